"""German e-invoices (EN 16931) for Stripe invoices (PRODUCT.md capability 13): the domain.

An `EInvoice` is what EN 16931 says an invoice is (seller, buyer, lines, VAT breakdown, totals, payment
instructions, references), filled from Stripe's invoice JSON (the current API shape: `total_taxes`,
line `taxes` with `tax_rate_details`, `parent.subscription_details`) with cents turned into Decimal
euros. The same EInvoice is written as XRechnung (CII XML only) and as ZUGFeRD/Factur-X EN 16931 (the
CII XML inside the invoice PDF) by adapters/e_invoice_cii.py.

`from_stripe_invoice` decides everything, and refuses (`EInvoiceUnavailable`) rather than write an
invoice that would break a business rule of EN 16931 (`BR-...`) or of XRechnung (`BR-DE-...`):

- the numbers must add up as Stripe's invoice says: BR-CO-10 (sum of line net amounts), BR-CO-13..16
  (tax basis, tax total, grand total, amount due), and the VAT breakdown per category and rate
  (BR-S-08, BR-AE-08, BR-O-08, BR-Z-08) must equal the lines it covers; an invoice whose numbers do
  not (a discount shape Stripe added later, a credit balance applied twice) is refused, not guessed;
- VAT categories: S (standard rate, with its percentage), AE (reverse charge: 0 %, exemption reason
  "Reverse charge" / VATEX-EU-AE, and both VAT ids, BR-AE-02), O (not subject to VAT, where Stripe says
  `not_subject_to_tax` or `not_collecting`: no VAT ids at all and no other category, BR-O-02/BR-O-11),
  Z (zero rated). Exempt categories need a legal reason Stripe does not give: refused;
- BT-10 buyer reference (XRechnung's BR-DE-15): the purchase-order custom field, else the customer id.

Dates are calendar dates in Europe/Berlin, as the German seller's Stripe account prints them on the PDF.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

XRECHNUNG = "xrechnung"
ZUGFERD = "zugferd"
PROFILES = (XRECHNUNG, ZUGFERD)

SELLER_TIMEZONE = ZoneInfo("Europe/Berlin")
COMMERCIAL_INVOICE = "380"  # UNTDID 1001
# Custom fields the server sets on invoices (services/invoice_purchase.custom_fields), in both languages.
PO_FIELD_NAMES = frozenset({"po number", "bestellnummer", "purchase order", "purchase order number"})
COST_CENTRE_FIELD_NAMES = frozenset({"cost centre", "cost center", "kostenstelle"})
# Stripe's zero-decimal currencies: their amounts are not cents.
_ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
                           "vuv", "xaf", "xof", "xpf"})
_CENT = Decimal("0.01")
_PRICE = Decimal("0.0001")


class EInvoiceUnavailable(Exception):
    """This invoice cannot be an e-invoice (yet); `code` for programs and translations, the message says
    why in English."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --- the parts of an e-invoice ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    line1: str
    postal_code: str
    city: str
    country: str  # ISO 3166-1 alpha-2
    line2: str | None = None


@dataclass(frozen=True)
class Seller:
    legal_name: str  # BT-27
    address: Address  # BG-5
    vat_id: str  # BT-31
    register: str  # BT-30, e.g. "Amtsgericht München, HRB 123456"
    email: str  # BT-34 (electronic address) and BT-43 (contact e-mail)
    phone: str | None = None  # BT-42; XRechnung requires it (BR-DE-6)
    contact: str = "Buchhaltung"  # BT-41, the contact point


@dataclass(frozen=True)
class BankAccount:
    """Where the buyer transfers the money (BG-17): Stripe's funding instructions for the customer."""

    iban: str
    bic: str | None = None
    holder: str | None = None


@dataclass(frozen=True)
class Buyer:
    name: str  # BT-44
    address: Address  # BG-8
    vat_id: str | None  # BT-48
    email: str | None  # BT-49 (electronic address); XRechnung requires it
    customer_id: str


@dataclass(frozen=True)
class TaxCategory:
    code: str  # UNCL 5305: S, AE, O, Z
    percent: Decimal | None  # None for O (BR-O-05: no rate on its lines)
    exemption_reason: str | None = None  # BT-120
    exemption_code: str | None = None  # BT-121 (VATEX)


STANDARD = "S"
REVERSE_CHARGE = TaxCategory("AE", Decimal("0"), "Reverse charge", "VATEX-EU-AE")
NOT_SUBJECT = TaxCategory("O", None, "Not subject to VAT", "VATEX-EU-O")
ZERO_RATED = TaxCategory("Z", Decimal("0"))


@dataclass(frozen=True)
class Line:
    id: str  # BT-126
    name: str  # BT-153
    quantity: Decimal  # BT-129 (negative for a credit line, so the net price stays positive: BR-27)
    unit_price: Decimal  # BT-146, net
    net_amount: Decimal  # BT-131
    allowance: Decimal  # BG-27, a discount on the line (0: none)
    tax: TaxCategory
    period_start: date | None  # BT-134
    period_end: date | None  # BT-135


@dataclass(frozen=True)
class TaxBreakdown:  # BG-23
    category: TaxCategory
    basis: Decimal  # BT-116
    tax: Decimal  # BT-117


@dataclass(frozen=True)
class Totals:  # BG-22
    line_total: Decimal  # BT-106
    tax_basis: Decimal  # BT-109
    tax_total: Decimal  # BT-110
    grand_total: Decimal  # BT-112
    prepaid: Decimal  # BT-113
    due: Decimal  # BT-115


@dataclass(frozen=True)
class PaymentMeans:  # BG-16
    code: str  # BT-81, UNTDID 4461
    text: str | None = None  # BT-82
    account: BankAccount | None = None  # BG-17, credit transfer
    card_last_digits: str | None = None  # BT-87
    card_holder: str | None = None  # BT-88
    reference: str | None = None  # BT-83, remittance information


@dataclass(frozen=True)
class EInvoice:
    stripe_invoice_id: str
    number: str  # BT-1
    type_code: str  # BT-3
    issue_date: date  # BT-2
    currency: str  # BT-5, ISO 4217 upper case
    buyer_reference: str  # BT-10
    purchase_order: str | None  # BT-13
    cost_centre: str | None  # BT-19, the buyer's accounting reference
    seller: Seller
    buyer: Buyer
    lines: tuple[Line, ...]
    taxes: tuple[TaxBreakdown, ...]
    totals: Totals
    payment: PaymentMeans
    payment_terms: str  # BT-20
    due_date: date | None  # BT-9

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(t.category.code for t in self.taxes)


# --- from Stripe's invoice --------------------------------------------------------------------------------


def tax_rate_ids(invoice: Mapping[str, Any]) -> list[str]:
    """The tax rates the invoice's taxes name (to fetch their percentages), in order, once each."""
    found: list[str] = []
    entries = list(invoice.get("total_taxes") or [])
    for line in _lines(invoice):
        entries += list(line.get("taxes") or [])
    for entry in entries:
        rate_id = _rate_id(entry)
        if rate_id and rate_id not in found:
            found.append(rate_id)
    return found


def check_invoice_state(invoice: Mapping[str, Any]) -> None:
    """Refuse what never becomes an e-invoice, before anything is fetched for it."""
    status = invoice.get("status")
    if status == "draft" or not invoice.get("number"):
        raise EInvoiceUnavailable("draft", "the invoice is a draft: it gets its number and e-invoice when it is "
                                           "finalized")
    if status == "void":
        raise EInvoiceUnavailable("void", "the invoice was voided")


def from_stripe_invoice(invoice: Mapping[str, Any], tax_rates: Mapping[str, Mapping[str, Any]], seller: Seller,
                        payment: BankAccount | None) -> EInvoice:
    """The e-invoice of a finalized Stripe invoice. `tax_rates` maps the ids in `tax_rate_ids(invoice)` to
    Stripe tax rate objects; `payment` is the bank account for transfers (funding instructions), used
    when the invoice is paid by transfer (`collection_method=send_invoice`)."""
    check_invoice_state(invoice)
    currency = str(invoice.get("currency") or "").lower()
    if len(currency) != 3 or currency in _ZERO_DECIMAL:
        raise EInvoiceUnavailable("currency", f"currency {currency or '(none)'} is not supported for e-invoices")
    if (invoice.get("lines") or {}).get("has_more"):
        raise EInvoiceUnavailable("lines", "not all invoice lines were read")

    buyer = _buyer(invoice)  # name and address first: the likeliest gap, said first
    reverse_exempt = invoice.get("customer_tax_exempt") == "reverse"
    invoice_categories = [_category(entry, tax_rates, reverse_exempt) for entry in invoice.get("total_taxes") or []]
    lines = tuple(_line(index, raw, tax_rates, reverse_exempt, invoice_categories)
                  for index, raw in enumerate(_lines(invoice), start=1))
    if not lines:
        raise EInvoiceUnavailable("lines", "the invoice has no lines")
    taxes = _breakdown(invoice, invoice_categories, lines)
    codes = {t.category.code for t in taxes}
    if "O" in codes and len(taxes) > 1:
        raise EInvoiceUnavailable("tax", "lines not subject to VAT mixed with taxed lines (BR-O-11)")

    if "O" in codes:
        buyer = replace(buyer, vat_id=None)  # BR-O-02
    if "AE" in codes and not buyer.vat_id:
        raise EInvoiceUnavailable("vat_id", "reverse charge needs the buyer's VAT ID (BR-AE-02); add it to the "
                                            "customer in Stripe")
    totals = _totals(invoice, lines, taxes)
    issued = _date(((invoice.get("status_transitions") or {}).get("finalized_at")) or invoice.get("created"))
    if issued is None:
        raise EInvoiceUnavailable("date", "the invoice has no date")
    fields = _custom_fields(invoice)
    purchase_order = _field(fields, PO_FIELD_NAMES)
    number = str(invoice["number"])
    due_date = _date(invoice.get("due_date"))
    means = _payment_means(invoice, payment, number)
    return EInvoice(
        stripe_invoice_id=str(invoice.get("id") or ""), number=number, type_code=COMMERCIAL_INVOICE,
        issue_date=issued, currency=currency.upper(),
        buyer_reference=purchase_order or buyer.customer_id, purchase_order=purchase_order,
        cost_centre=_field(fields, COST_CENTRE_FIELD_NAMES),
        seller=seller, buyer=buyer, lines=lines, taxes=taxes, totals=totals, payment=means,
        payment_terms=_terms(invoice, means, due_date, totals), due_date=due_date if totals.due > 0 else None,
    )


def check_profile(einvoice: EInvoice, profile: str) -> None:
    """What a profile needs beyond EN 16931 itself: XRechnung's seller telephone (BR-DE-6) and the
    buyer's electronic address (BT-49, mandatory in XRechnung 3.0)."""
    if profile not in PROFILES:
        raise ValueError(f"profile: one of {', '.join(PROFILES)}")
    if profile == XRECHNUNG:
        if not einvoice.seller.phone:
            raise EInvoiceUnavailable("seller_phone", "XRechnung needs the seller's telephone number (BR-DE-6): "
                                                      "set SELLER_PHONE")
        if not einvoice.buyer.email:
            raise EInvoiceUnavailable("buyer_email", "XRechnung needs the buyer's e-mail address (BT-49); add it to "
                                                     "the customer in Stripe")


# --- the pieces ---------------------------------------------------------------------------------------------


def _lines(invoice: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((invoice.get("lines") or {}).get("data") or [])


def _money(cents: Any) -> Decimal:
    return (Decimal(int(cents or 0)) / 100).quantize(_CENT)


def _date(timestamp: Any) -> date | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(int(timestamp), tz=UTC).astimezone(SELLER_TIMEZONE).date()


def _rate_id(entry: Mapping[str, Any]) -> str | None:
    details = entry.get("tax_rate_details") or {}
    rate = details.get("tax_rate") if isinstance(details, Mapping) else None
    if rate is None:
        rate = entry.get("tax_rate")  # the pre-2025 shape of line tax amounts
    if isinstance(rate, Mapping):
        rate = rate.get("id")
    return str(rate) if rate else None


def _percent(rate: Mapping[str, Any]) -> Decimal | None:
    value = rate.get("percentage")
    if value is None:
        value = rate.get("effective_percentage")
    return None if value is None else Decimal(str(value))


def _category(entry: Mapping[str, Any], tax_rates: Mapping[str, Mapping[str, Any]],
              reverse_exempt: bool) -> TaxCategory:
    """The EN 16931 VAT category of one Stripe tax amount."""
    reason = entry.get("taxability_reason")
    amount = int(entry.get("amount") or 0)
    if reason == "reverse_charge":
        return REVERSE_CHARGE
    if reason in ("not_subject_to_tax", "not_collecting"):
        return NOT_SUBJECT
    if reason == "zero_rated":
        return ZERO_RATED
    if reason in ("customer_exempt", "product_exempt", "product_exempt_holiday"):
        raise EInvoiceUnavailable("tax", f"VAT exemption ({reason}) without the legal reason EN 16931 requires")
    rate_id = _rate_id(entry)
    rate = tax_rates.get(rate_id) if rate_id else None
    if rate is None:
        raise EInvoiceUnavailable("tax", f"tax rate {rate_id or '(none)'} could not be read")
    if str(rate.get("tax_type") or "vat") != "vat":
        raise EInvoiceUnavailable("tax", f"tax rate {rate_id} is {rate.get('tax_type')}, not VAT")
    percent = _percent(rate)
    if percent is not None and percent > 0:
        return TaxCategory(STANDARD, percent.quantize(_CENT))
    if amount == 0 and reverse_exempt:
        return REVERSE_CHARGE
    raise EInvoiceUnavailable("tax", f"tax rate {rate_id} at 0 % without a reason (reverse charge, not subject "
                                     "to VAT)")


def _line_category(raw: Mapping[str, Any], tax_rates: Mapping[str, Mapping[str, Any]], reverse_exempt: bool,
                   invoice_categories: list[TaxCategory]) -> TaxCategory:
    taxes = list(raw.get("taxes") or [])
    if len(taxes) > 1:
        raise EInvoiceUnavailable("tax", "a line with more than one tax (EN 16931 allows one VAT category per line)")
    if taxes:
        return _category(taxes[0], tax_rates, reverse_exempt)
    if len(set(invoice_categories)) == 1:
        return invoice_categories[0]
    if not invoice_categories and reverse_exempt:
        return REVERSE_CHARGE
    raise EInvoiceUnavailable("tax", "the invoice has no VAT information (is Stripe Tax on?)")


def _line(index: int, raw: Mapping[str, Any], tax_rates: Mapping[str, Mapping[str, Any]], reverse_exempt: bool,
          invoice_categories: list[TaxCategory]) -> Line:
    category = _line_category(raw, tax_rates, reverse_exempt, invoice_categories)
    amount = _money(raw.get("amount"))
    inclusive = sum((_money(t.get("amount")) for t in raw.get("taxes") or []
                     if t.get("tax_behavior") == "inclusive"), Decimal("0.00"))
    credits = raw.get("pretax_credit_amounts")
    if credits is None:
        credits = raw.get("discount_amounts")
    allowance = sum((_money(c.get("amount")) for c in credits or []), Decimal("0.00"))
    gross = amount - inclusive  # the line before its discount, without VAT
    quantity = Decimal(str(raw.get("quantity_decimal") or raw.get("quantity") or 1))
    if quantity == 0:
        quantity = Decimal(1)
    if gross < 0 and quantity > 0:
        quantity = -quantity  # a credit: negative quantity at a positive price (BR-27)
    unit_price = (gross / quantity).quantize(_PRICE, rounding=ROUND_HALF_UP)
    if unit_price == unit_price.quantize(_CENT):
        unit_price = unit_price.quantize(_CENT)  # 6.00, not 6.0000; 3.3333 keeps its four decimals
    period = raw.get("period") or {}
    name = str(raw.get("description") or "SecureMailMerge").strip()[:1000]
    return Line(id=str(index), name=name, quantity=quantity, unit_price=unit_price, net_amount=gross - allowance,
                allowance=allowance, tax=category, period_start=_date(period.get("start")),
                period_end=_date(period.get("end")))


def _breakdown(invoice: Mapping[str, Any], invoice_categories: list[TaxCategory],
               lines: tuple[Line, ...]) -> tuple[TaxBreakdown, ...]:
    """BG-23 from Stripe's `total_taxes` (amounts and taxable amounts per rate), checked against the lines
    it covers (BR-S-08, BR-AE-08, BR-O-08, BR-Z-08)."""
    by_category: dict[TaxCategory, tuple[Decimal, Decimal]] = {}
    for entry, category in zip(invoice.get("total_taxes") or [], invoice_categories, strict=True):
        basis, tax = by_category.get(category, (Decimal("0.00"), Decimal("0.00")))
        by_category[category] = (basis + _money(entry.get("taxable_amount")), tax + _money(entry.get("amount")))
    line_sums: dict[TaxCategory, Decimal] = {}
    for line in lines:
        line_sums[line.tax] = line_sums.get(line.tax, Decimal("0.00")) + line.net_amount
    if not by_category:  # no tax amounts at all: reverse charge decided from the customer (see _line_category)
        by_category = {category: (basis, Decimal("0.00")) for category, basis in line_sums.items()}
    if set(line_sums) - set(by_category):
        raise EInvoiceUnavailable("tax", "a line's VAT category is missing from the invoice's tax amounts")
    out = []
    for category, (basis, tax) in by_category.items():
        if basis != line_sums.get(category, Decimal("0.00")):
            raise EInvoiceUnavailable("tax", f"the taxable amount at {category.code} {category.percent or 0} % "
                                             f"({basis}) is not the sum of its lines")
        if category.code != STANDARD and tax != 0:
            raise EInvoiceUnavailable("tax", f"VAT charged under category {category.code}")
        out.append(TaxBreakdown(category, basis, tax))
    return tuple(sorted(out, key=lambda t: (t.category.code, t.category.percent or 0)))


def _totals(invoice: Mapping[str, Any], lines: Iterable[Line], taxes: Iterable[TaxBreakdown]) -> Totals:
    line_total = sum((line.net_amount for line in lines), Decimal("0.00"))
    tax_total = sum((t.tax for t in taxes), Decimal("0.00"))
    grand_total = _money(invoice.get("total"))
    excluding = invoice.get("total_excluding_tax")
    tax_basis = _money(excluding) if excluding is not None else grand_total - tax_total
    if tax_basis != line_total:  # BR-CO-13 with no document-level allowances or charges
        raise EInvoiceUnavailable("totals", f"the lines ({line_total}) do not add up to the total without VAT "
                                            f"({tax_basis})")
    if tax_basis + tax_total != grand_total:  # BR-CO-15
        raise EInvoiceUnavailable("totals", f"total without VAT {tax_basis} + VAT {tax_total} is not the total "
                                            f"{grand_total}")
    remaining = _money(invoice.get("amount_remaining"))
    if grand_total < 0:
        # A credit (a quantity lowered): nothing is due and nothing was paid; the customer balance holds it.
        prepaid, due = Decimal("0.00"), grand_total
    else:
        # Paid, and any customer credit balance Stripe applied, count as already paid (BR-CO-16).
        prepaid, due = grand_total - remaining, remaining
        if prepaid < 0:
            raise EInvoiceUnavailable("totals", f"the amount remaining {remaining} exceeds the total {grand_total}")
    return Totals(line_total=line_total, tax_basis=tax_basis, tax_total=tax_total, grand_total=grand_total,
                  prepaid=prepaid, due=due)


def _address(raw: Mapping[str, Any] | None) -> Address | None:
    raw = raw or {}
    line1, postal_code, city, country = (str(raw.get(k) or "").strip() for k in ("line1", "postal_code", "city",
                                                                                 "country"))
    if not (line1 and postal_code and city and len(country) == 2):
        return None
    return Address(line1=line1, postal_code=postal_code, city=city, country=country.upper(),
                   line2=str(raw.get("line2") or "").strip() or None)


def _buyer(invoice: Mapping[str, Any]) -> Buyer:
    address = _address(invoice.get("customer_address"))
    if address is None:
        raise EInvoiceUnavailable("buyer_address", "the invoice has no complete customer address (street, postal "
                                                   "code, city, country); add it to the customer in Stripe")
    name = str(invoice.get("customer_name") or "").strip()
    if not name:
        raise EInvoiceUnavailable("buyer_name", "the invoice has no customer name; add it to the customer in Stripe")
    vat_id = None
    for tax_id in invoice.get("customer_tax_ids") or []:
        if tax_id.get("type") == "eu_vat" and tax_id.get("value"):
            vat_id = str(tax_id["value"]).replace(" ", "").upper()
            break
    customer = invoice.get("customer")
    customer_id = str(customer.get("id") if isinstance(customer, Mapping) else customer or "")
    return Buyer(name=name, address=address, vat_id=vat_id,
                 email=str(invoice.get("customer_email") or "").strip() or None, customer_id=customer_id)


def _custom_fields(invoice: Mapping[str, Any]) -> dict[str, str]:
    return {str(f.get("name") or "").strip().casefold(): str(f.get("value") or "").strip()
            for f in invoice.get("custom_fields") or [] if isinstance(f, Mapping)}


def _field(fields: Mapping[str, str], names: frozenset[str]) -> str | None:
    for name, value in fields.items():
        if name in names and value:
            return value
    return None


def _payment_means(invoice: Mapping[str, Any], account: BankAccount | None, number: str) -> PaymentMeans:
    """58 SEPA credit transfer to the customer's funding account when paid by invoice; 48 card when Stripe
    names the card; otherwise 1 (instrument not defined, which EN 16931 allows) with what is known."""
    if invoice.get("collection_method") == "send_invoice":
        if account is not None:
            return PaymentMeans("58", "SEPA credit transfer", account=account, reference=number)
        url = invoice.get("hosted_invoice_url")
        return PaymentMeans("1", f"Pay online: {url}" if url else "See the invoice", reference=number)
    method = invoice.get("default_payment_method")
    if isinstance(method, Mapping) and method.get("type") == "card":
        card = method.get("card") or {}
        last4 = str(card.get("last4") or "")
        if last4:
            holder = (method.get("billing_details") or {}).get("name")
            return PaymentMeans("48", "Card", card_last_digits=last4, card_holder=str(holder) if holder else None)
    kind = method.get("type") if isinstance(method, Mapping) else None
    types = list((invoice.get("payment_settings") or {}).get("payment_method_types") or [])
    kind = kind or (types[0] if len(types) == 1 else None)
    described = {"card": "card", "sepa_debit": "SEPA direct debit"}.get(str(kind), "the payment method on file")
    return PaymentMeans("1", f"Charged automatically to {described}")


def _terms(invoice: Mapping[str, Any], means: PaymentMeans, due_date: date | None, totals: Totals) -> str:
    if totals.due <= 0:
        return "Paid" if totals.grand_total > 0 else "Nothing to pay"
    if invoice.get("collection_method") == "send_invoice":
        by = f" by {due_date.isoformat()}" if due_date else ""
        return f"Payable{by}, quoting invoice number {means.reference}"
    return "Charged automatically to the payment method on file"
