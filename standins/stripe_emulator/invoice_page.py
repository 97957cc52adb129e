"""The hosted invoice page and the invoice PDF: one document, two renderings.

What a German B2B invoice carries, as Stripe prints it: the seller (account name, address,
VAT ID) and the buyer (name, address, e-mail, tax IDs), number, issue and due dates, the
service period, the invoice custom fields (a purchase-order number), the lines, subtotal,
each tax with its rate, total, amounts paid and due, "Tax to be paid on reverse charge
basis" for a reverse-charge sale, and for an invoice paid by bank transfer the transfer
instructions: the customer's virtual IBAN, BIC, account holder and the invoice number as
payment reference.
"""

import html
from datetime import UTC, datetime

from . import billing, collection, funding, pdf
from .layout import page, redirect
from .pricing import format_money

REVERSE_CHARGE_NOTE = "Tax to be paid on reverse charge basis"


def _day(timestamp):
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%d %b %Y") if timestamp else None


def _address_lines(address):
    address = address or {}
    city = " ".join(filter(None, (address.get("postal_code"), address.get("city"))))
    return [line for line in (address.get("line1"), address.get("line2"), city,
                              address.get("state"), address.get("country")) if line]


def _percentage(value):
    return f"{value:g}"


def document(store, settings, invoice):
    """Everything the invoice shows, as plain data (read under the store lock)."""
    currency = invoice["currency"]
    money = lambda amount: format_money(amount, currency)  # noqa: E731
    taxes, reverse_charge = [], False
    for entry in invoice.get("total_taxes") or []:
        rate = store.get("tax_rate", (entry.get("tax_rate_details") or {}).get("tax_rate")) or {}
        label = f"{rate.get('display_name', 'Tax')} {_percentage(rate.get('percentage', 0))} %"
        if entry["taxability_reason"] == "reverse_charge":
            reverse_charge = True
            label += " (reverse charge)"
        elif entry["taxability_reason"] != "standard_rated":
            label += f" ({entry['taxability_reason'].replace('_', ' ')})"
        taxes.append((f"{label} on {money(entry['taxable_amount'])}", money(entry["amount"])))
    details = [("Invoice number", invoice["number"] or invoice["id"]),
               ("Date of issue", _day(invoice["status_transitions"]["finalized_at"]
                                      or invoice["created"])),
               ("Date due", _day(invoice["due_date"]))]
    lines = invoice["_lines"]
    if lines:
        details.append(("Service period", f"{_day(min(line['period']['start'] for line in lines))}"
                                          f" – {_day(max(line['period']['end'] for line in lines))}"))
    details += [(field["name"], field["value"]) for field in invoice.get("custom_fields") or []]
    buyer = [invoice["customer_name"]] + _address_lines(invoice["customer_address"])
    buyer += [invoice["customer_email"]]
    buyer += [f"{t['type'].replace('_', ' ').upper()}: {t['value']}"
              for t in invoice.get("customer_tax_ids") or []]
    seller = [settings.account_name] + _address_lines(settings.account_address)
    if settings.account_vat_id:
        seller.append(f"VAT ID: {settings.account_vat_id}")
    transfer = None
    if collection.pays_by_bank_transfer(invoice):
        iban = funding.iban_record(settings, invoice["customer"])
        transfer = {"IBAN": iban["iban"], "BIC": iban["bic"],
                    "Account holder": iban["account_holder_name"],
                    "Reference": invoice["number"] or invoice["id"],
                    "Amount": money(invoice["amount_remaining"]),
                    "Due": _day(invoice["due_date"])}
    return {
        "title": f"Invoice {invoice['number'] or ''}".strip(), "status": invoice["status"],
        "seller": [line for line in seller if line], "buyer": [line for line in buyer if line],
        "details": [(name, value) for name, value in details if value],
        "lines": [(line["description"] or "", str(line["quantity"] or ""),
                   money(line["amount"])) for line in lines],
        "subtotal": money(invoice["subtotal"]), "taxes": taxes, "total": money(invoice["total"]),
        "amount_paid": money(invoice["amount_paid"]), "amount_due": money(invoice["amount_due"]),
        "amount_remaining": invoice["amount_remaining"],
        "notes": [REVERSE_CHARGE_NOTE] if reverse_charge else [], "bank_transfer": transfer,
        "pdf_url": invoice["invoice_pdf"] or "", "created": invoice["created"],
        "currency": currency,
    }


def _load(emulator, invoice_id):
    with emulator.store.lock:
        invoice = emulator.store.require("invoice", invoice_id)
        return document(emulator.store, emulator.settings, invoice)


def show(emulator, invoice_id, notice=None):
    doc = _load(emulator, invoice_id)
    esc = html.escape
    rows = "".join(f"<tr><td>{esc(d)}</td><td>{esc(q)}</td><td class='amount'>{esc(a)}</td></tr>"
                   for d, q, a in doc["lines"])
    tax_rows = "".join(f"<tr class='tax'><th colspan='2'>{esc(label)}</th>"
                       f"<td class='amount'>{esc(amount)}</td></tr>" for label, amount in doc["taxes"])
    details = "".join(f"<tr><th>{esc(name)}</th><td>{esc(value)}</td></tr>"
                      for name, value in doc["details"])
    notes = "".join(f"<p id='reverse-charge'><strong>{esc(note)}</strong></p>"
                    for note in doc["notes"])
    transfer = ""
    if doc["bank_transfer"] and doc["status"] == "open":
        fields = "".join(f"<tr><th>{esc(name)}</th><td id='{name.split()[0].lower()}'>"
                         f"{esc(value or '')}</td></tr>" for name, value in doc["bank_transfer"].items())
        transfer = (f"<section id='bank-transfer'><h2>Pay by bank transfer</h2><p>Transfer the "
                    f"amount due to this account and quote the reference.</p>"
                    f"<table>{fields}</table></section>")
    pay = ("<form method='post'><button id='pay'>Pay "
           f"{esc(format_money(doc['amount_remaining'], doc['currency']))}</button></form>"
           if doc["status"] == "open" and doc["amount_remaining"] > 0 and not doc["bank_transfer"]
           else "")
    notice_html = f"<p class='error' role='alert'>{esc(notice)}</p>" if notice else ""
    number = doc["title"].removeprefix("Invoice ").strip() or invoice_id
    body = f"""
<h1>Invoice <span id='number'>{esc(number)}</span></h1>
<p>Status: <strong id='status'>{doc['status']}</strong></p>
<section id='seller'><h2>From</h2><address>{'<br>'.join(esc(x) for x in doc['seller'])}</address>
</section>
<section id='bill-to'><h2>Bill to</h2><address>{'<br>'.join(esc(x) for x in doc['buyer'])}</address>
</section>
<table id='details'>{details}</table>
<table id='lines'><thead><tr><th>Description</th><th>Qty</th><th class='amount'>Amount</th></tr>
</thead><tbody>{rows}</tbody><tfoot>
<tr><th colspan='2'>Subtotal</th><td class='amount' id='subtotal'>{esc(doc['subtotal'])}</td></tr>
{tax_rows}
<tr><th colspan='2'>Total</th><th class='amount' id='total'>{esc(doc['total'])}</th></tr>
<tr><th colspan='2'>Amount due</th><th class='amount' id='amount-due'>{esc(doc['amount_due'])}</th></tr>
<tr><th colspan='2'>Amount paid</th><th class='amount' id='amount-paid'>{esc(doc['amount_paid'])}</th></tr>
</tfoot></table>{notes}{transfer}{notice_html}{pay}
<p><a id='pdf' href='{esc(doc['pdf_url'])}'>Download PDF</a></p>"""
    return page(doc["title"] or "Invoice", body)


def pay(emulator, invoice_id, base_url):
    """The customer pays an open invoice on the hosted page (with the card on file)."""
    with emulator.action(base_url) as ctx:
        invoice = ctx.store.require("invoice", invoice_id)
        decline = None
        if invoice["status"] == "open" and not collection.pays_by_bank_transfer(invoice):
            decline = billing.collect(ctx, invoice)
            if decline is None:
                billing.invoice_settled(ctx, invoice)
    if decline:
        return show(emulator, invoice_id, notice=billing.DECLINE_MESSAGES.get(
            decline, "Your card was declined."))
    return redirect(f"/invoice/{invoice_id}")


def as_pdf(emulator, invoice_id):
    doc = _load(emulator, invoice_id)
    T = pdf.Text
    texts = [T(doc["title"], size=18, style="bold"), T(f"Status: {doc['status']}", gap=4)]
    texts.append(T("From", style="bold", gap=10))
    texts.append(T("Bill to", x=320, style="bold", new_row=False))
    for index in range(max(len(doc["seller"]), len(doc["buyer"]))):
        texts.append(T(doc["seller"][index] if index < len(doc["seller"]) else ""))
        if index < len(doc["buyer"]):
            texts.append(T(doc["buyer"][index], x=320, new_row=False))
    for position, (name, value) in enumerate(doc["details"]):
        texts.append(T(f"{name}:", style="bold", gap=10 if position == 0 else 0))
        texts.append(T(value, x=180, new_row=False))
    texts += [T("Description", style="bold", gap=12), T("Qty", x=400, style="bold", new_row=False),
              T("Amount", x=470, style="bold", new_row=False)]
    for description, quantity, amount in doc["lines"]:
        texts += [T(description[:70]), T(quantity, x=400, new_row=False),
                  T(amount, x=470, new_row=False)]
    totals = [("Subtotal", doc["subtotal"]), *doc["taxes"], ("Total", doc["total"]),
              ("Amount paid", doc["amount_paid"]), ("Amount due", doc["amount_due"])]
    for position, (label, amount) in enumerate(totals):
        bold = label in ("Total", "Amount due")
        texts += [T(label, x=200, style="bold" if bold else "regular",
                    gap=8 if position == 0 else 0),
                  T(amount, x=470, style="bold" if bold else "regular", new_row=False)]
    texts += [T(note, style="bold", gap=10) for note in doc["notes"]]
    if doc["bank_transfer"]:  # the document as issued: the instructions stay on it
        texts.append(T("Pay by bank transfer", style="bold", gap=12))
        for name, value in doc["bank_transfer"].items():
            texts += [T(f"{name}:"), T(value or "", x=180, new_row=False)]
    data = pdf.render(texts, title=doc["title"], when=doc["created"])
    filename = (doc["title"].removeprefix("Invoice ").strip() or invoice_id) + ".pdf"
    return 200, data, "application/pdf", {"Content-Disposition": f"inline; filename=\"{filename}\""}
