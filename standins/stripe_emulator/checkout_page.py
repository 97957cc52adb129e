"""Stripe-hosted pages, emulated: Checkout and the billing portal (the hosted invoice and its
PDF: invoice_page.py).

Buttons on the checkout page cover the outcomes the server must handle: card success,
a delayed SEPA debit (completes unpaid, settles later), a declined card, and cancel.
"""

import html
from urllib.parse import parse_qs

from . import billing, checkout, customers, invoice_page, tax, tax_ids
from .errors import StripeError
from .layout import page, redirect
from .pricing import format_money, unit_amount_for


def handle(emulator, method, path, body, base_url):
    parts = [p for p in path.split("/") if p]
    try:
        if len(parts) == 2 and parts[0] == "checkout":
            if method == "POST":
                return _submit_checkout(emulator, parts[1], body, base_url)
            return _checkout(emulator, parts[1])
        if len(parts) == 2 and parts[0] == "invoice":
            if method == "POST":
                return invoice_page.pay(emulator, parts[1], base_url)
            return invoice_page.show(emulator, parts[1])
        if len(parts) == 3 and parts[0] == "invoice" and parts[2] == "pdf":
            return invoice_page.as_pdf(emulator, parts[1])
        if len(parts) == 2 and parts[0] == "billing_portal":
            if method == "POST":
                return _portal_action(emulator, parts[1], body, base_url)
            return _portal(emulator, parts[1])
        if not parts:
            return page("Stripe emulator", "<h1>Stripe emulator</h1><p>API at <code>/v1</code>, "
                                            "controls at <code>/_emulator</code>.</p>")
    except StripeError as error:
        return page("Not found", f"<h1>{html.escape(error.message)}</h1>", error.status)
    return page("Not found", "<h1>Not found</h1>", 404)


# -- checkout ----------------------------------------------------------------------------

COUNTRIES = {
    "AT": "Austria", "BE": "Belgium", "BG": "Bulgaria", "HR": "Croatia", "CY": "Cyprus",
    "CZ": "Czechia", "DK": "Denmark", "EE": "Estonia", "FI": "Finland", "FR": "France",
    "DE": "Germany", "GR": "Greece", "HU": "Hungary", "IE": "Ireland", "IT": "Italy",
    "LV": "Latvia", "LT": "Lithuania", "LU": "Luxembourg", "MT": "Malta", "NL": "Netherlands",
    "PL": "Poland", "PT": "Portugal", "RO": "Romania", "SK": "Slovakia", "SI": "Slovenia",
    "ES": "Spain", "SE": "Sweden", "CH": "Switzerland", "GB": "United Kingdom",
    "NO": "Norway", "US": "United States",
}


def _field(name, label, value, required=False, kind="text", autocomplete=None):
    extra = (" required" if required else "") + (
        f" autocomplete='{autocomplete}'" if autocomplete else "")
    return (f"<label for='{name}'>{label}</label><input id='{name}' name='{name}' type='{kind}' "
            f"value='{html.escape(value or '')}'{extra}>")


def _country_select(selected):
    options = "".join(f"<option value='{code}'{' selected' if code == selected else ''}>"
                      f"{html.escape(name)}</option>"
                      for code, name in sorted(COUNTRIES.items(), key=lambda item: item[1]))
    return (f"<label for='country'>Country or region</label><select id='country' name='country'>"
            f"<option value=''>Select…</option>{options}</select>")


def _buyer_fields(session, details, customer):
    """The address and business fields the session asks for (none for a plain session)."""
    address = (customer or {}).get("address") or {}
    value = lambda name: getattr(details, name) or address.get(name)  # noqa: E731
    wanted = checkout.asks_for_address(session)
    parts = []
    if wanted == "full":
        parts.append("<fieldset id='billing-address'><legend>Billing address</legend>"
                     + _field("name", "Full name", details.name or (customer or {}).get("name"),
                              autocomplete="name")
                     + _field("line1", "Address line 1", value("line1"), True, autocomplete="address-line1")
                     + _field("line2", "Address line 2", value("line2"), autocomplete="address-line2")
                     + _field("postal_code", "Postal code", value("postal_code"), True,
                              autocomplete="postal-code")
                     + _field("city", "City", value("city"), True, autocomplete="address-level2")
                     + _country_select(value("country")) + "</fieldset>")
    elif wanted == "country":
        parts.append(f"<fieldset id='billing-address'><legend>Billing address</legend>"
                     f"{_country_select(value('country'))}</fieldset>")
    if session["tax_id_collection"]["enabled"]:
        checked = " checked" if details.business_name or details.tax_id else ""
        parts.append(
            "<fieldset id='business'><legend>Business</legend>"
            f"<input type='checkbox' id='business_purchase' name='business_purchase' value='1'"
            f"{checked}> <label class='inline' for='business_purchase'>I’m purchasing as a "
            f"business</label>"
            + _field("business_name", "Business name", details.business_name
                     or (customer or {}).get("name"), autocomplete="organization")
            + _field("tax_id", "VAT ID", details.tax_id)
            + "<p class='note'>EU businesses outside Germany with a valid VAT ID pay no German "
              "VAT (reverse charge).</p></fieldset>")
    return "".join(parts)


def _checkout(emulator, session_id, error=None, details=None):
    details = details or checkout.BuyerDetails()
    store = emulator.store
    with store.lock:
        session = store.require("checkout.session", session_id)
        customer = store.get("customer", session["customer"]) if session["customer"] else None
        rows = []
        for item in session["_line_items"]:
            price = store.get("price", item["price"])
            product = store.get("product", price["product"]) or {"name": price["product"]}
            interval = (price.get("recurring") or {}).get("interval", "month")
            unit = format_money(unit_amount_for(price, item["quantity"]), price["currency"])
            rows.append(
                f"<tr><td>{html.escape(product['name'])}</td><td>{item['quantity']} × {unit}</td>"
                f"<td class='amount'>{format_money(item['amount_subtotal'], price['currency'])}"
                f" / {interval}</td></tr>")
        trial = session["_subscription_data"]["trial_period_days"]
        subtotal, tax_amount, tax_status, reason = checkout.quote(store, emulator.settings,
                                                                  session, details)
        fields = _buyer_fields(session, details, customer)
        automatic = session["automatic_tax"]["enabled"]
    currency = session["currency"] or "eur"
    if session["status"] != "open":
        return page("Checkout", f"<h1>This checkout session is {session['status']}.</h1>", 410)
    email = html.escape(details.email or session["customer_email"] or (customer or {}).get(
        "email") or "")
    trial_note = (f"<p><strong>{trial}-day free trial</strong> — nothing is due today.</p>"
                  if trial else "")
    error_html = f"<p class='error' role='alert'>{html.escape(error)}</p>" if error else ""
    tax_rows = ""
    if automatic:
        if tax_status == "complete":
            label = {"reverse_charge": "VAT (reverse charge)",
                     "not_subject_to_tax": "VAT (not applicable)"}.get(reason, "VAT")
            shown = format_money(0 if trial else tax_amount, currency)
        else:
            label, shown = "Tax", "Enter your address to calculate"
        tax_rows = (f"<tr><th colspan='2'>Subtotal</th><td class='amount' id='subtotal'>"
                    f"{format_money(0 if trial else subtotal, currency)}</td></tr>"
                    f"<tr><th colspan='2' id='tax-label'>{html.escape(label)}</th>"
                    f"<td class='amount' id='tax'>{html.escape(shown)}</td></tr>")
    total = 0 if trial else subtotal + tax_amount
    update_button = ("<button name='action' value='quote' class='secondary' id='update-total'>"
                     "Update total</button>" if automatic else "")
    body = f"""
<h1>Subscribe</h1>
<table><thead><tr><th>Product</th><th>Quantity</th><th class='amount'>Amount</th></tr></thead>
<tbody>{''.join(rows)}</tbody>
<tfoot>{tax_rows}<tr><th colspan='2'>Total due today</th>
<th class='amount' id='total'>{format_money(total, currency)}</th></tr></tfoot>
</table>{trial_note}{error_html}
<form method='post'>
<label for='email'>Email</label>
<input id='email' name='email' type='email' value='{email}' placeholder='buyer@example.com'>
{fields}{update_button}
<button name='action' value='paid'>Pay</button>
<button name='action' value='delayed' class='secondary'>Pay with SEPA Direct Debit (delayed)</button>
<button name='action' value='declined' class='secondary'>Pay (card declined)</button>
<button name='action' value='cancel' class='secondary'>Cancel</button>
</form>"""
    return page("Checkout", body)


def _submit_checkout(emulator, session_id, body, base_url):
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
    action = form.get("action", "paid")
    if action == "cancel":
        with emulator.store.lock:
            session = emulator.store.require("checkout.session", session_id)
        return redirect(session["cancel_url"] or "/")
    details = checkout.BuyerDetails.from_fields(form)
    if action == "quote":
        return _checkout(emulator, session_id, details=details)
    try:
        with emulator.action(base_url) as ctx:
            session = ctx.store.require("checkout.session", session_id)
            checkout.complete(ctx, session, action, details=details)
    except StripeError as error:
        if error.status == 404:
            raise
        return _checkout(emulator, session_id, error=error.message, details=details)
    return redirect(checkout.success_redirect(session))


# -- billing portal ----------------------------------------------------------------------

_ADDRESS_FIELDS = ("line1", "line2", "postal_code", "city", "state", "country")


def _portal_state(store, session_id):
    session = store.require("billing_portal.session", session_id)
    configuration = store.require("billing_portal.configuration", session["configuration"])
    customer = store.require("customer", session["customer"])
    return session, configuration["features"], customer


def _portal(emulator, session_id, notice=None):
    """The customer portal, showing only what the session's configuration enables."""
    store = emulator.store
    with store.lock:
        session, features, customer = _portal_state(store, session_id)
        invoices = [dict(i) for i in store.all("invoice") if i["customer"] == customer["id"]]
        subs = [dict(s) for s in store.all("subscription") if s["customer"] == customer["id"]
                and s["status"] not in billing.ENDED]
        customer = dict(customer)
        tax_ids = [record["value"] for record in tax.ids_of(store, customer)]
    sections = []
    sub_rows = "".join(
        f"<li>{html.escape(s['id'])} — {s['status']}"
        f"{' (cancels at period end)' if s['cancel_at_period_end'] else ''}</li>" for s in subs)
    sections.append(f"<section id='subscriptions'><h2>Current plan</h2><ul>{sub_rows}</ul>")
    if features["subscription_update"]["enabled"]:
        sections.append("<p><a id='update-plan' href='#'>Update plan</a></p>")
    if features["subscription_cancel"]["enabled"]:
        sections.append("".join(
            f"<form method='post'><input type='hidden' name='action' value='cancel'>"
            f"<input type='hidden' name='subscription' value='{html.escape(s['id'])}'>"
            f"<button class='secondary cancel-plan'>Cancel plan</button></form>"
            for s in subs if not s["cancel_at_period_end"]))
    sections.append("</section>")
    if features["payment_method_update"]["enabled"]:
        card = "card declined" if customer.get("_decline_code") else "Visa •••• 4242"
        sections.append(
            f"<section id='payment-method'><h2>Payment method</h2><p>{card} (emulated)</p>"
            "<form method='post'><input type='hidden' name='action' value='payment_method'>"
            "<button class='secondary'>Update payment method</button></form></section>")
    update = features["customer_update"]
    if update["enabled"] and update["allowed_updates"]:
        address = customer.get("address") or {}
        fields = []
        if "address" in update["allowed_updates"]:
            fields += [f"<label for='{name}'>{name.replace('_', ' ').title()}</label>"
                       f"<input id='{name}' name='{name}' "
                       f"value='{html.escape(address.get(name) or '')}'>"
                       for name in _ADDRESS_FIELDS]
        if "email" in update["allowed_updates"]:
            fields.append("<label for='email'>Email</label><input id='email' name='email' "
                          f"value='{html.escape(customer.get('email') or '')}'>")
        if "name" in update["allowed_updates"]:
            fields.append("<label for='name'>Name</label><input id='name' name='name' "
                          f"value='{html.escape(customer.get('name') or '')}'>")
        if "tax_id" in update["allowed_updates"]:
            known = "".join(f"<li>{html.escape(t)}</li>" for t in tax_ids)
            fields.append(f"<ul id='tax-ids'>{known}</ul><label for='tax_id'>Tax ID</label>"
                          "<input id='tax_id' name='tax_id' placeholder='DE123456789'>")
        sections.append(
            "<section id='billing-information'><h2>Billing information</h2>"
            "<form method='post'><input type='hidden' name='action' value='customer_update'>"
            f"{''.join(fields)}<button>Save</button></form></section>")
    if features["invoice_history"]["enabled"]:
        rows = "".join(
            f"<tr><td><a href='{html.escape(i['hosted_invoice_url'] or '')}'>"
            f"{html.escape(i['number'] or i['id'])}</a></td><td>{i['status']}</td>"
            f"<td class='amount'>{format_money(i['total'], i['currency'])}</td></tr>"
            for i in invoices)
        sections.append(f"<section id='invoice-history'><h2>Invoice history</h2>"
                        f"<table><tbody>{rows}</tbody></table></section>")
    back = html.escape(session["return_url"] or "/")
    notice_html = f"<p role='status'>{html.escape(notice)}</p>" if notice else ""
    body = (f"<h1>Billing for {html.escape(customer['email'] or customer['id'])}</h1>"
            f"{notice_html}{''.join(sections)}"
            f"<p><a id='return' href='{back}'>Return to {back}</a></p>")
    return page("Billing portal", body)


def _portal_action(emulator, session_id, body, base_url):
    """What the portal's buttons do, limited to the features the configuration enables."""
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
    action = form.get("action")
    with emulator.action(base_url) as ctx:
        session, features, customer = _portal_state(ctx.store, session_id)
        before = ctx.events.snapshot(customer)
        if action == "payment_method" and features["payment_method_update"]["enabled"]:
            customer["_decline_code"] = None
            customer["invoice_settings"]["default_payment_method"] = "pm_card_visa"
            ctx.events.emit("customer.updated", customer, previous=before)
            notice = "Payment method updated."
        elif action == "customer_update" and features["customer_update"]["enabled"]:
            allowed = features["customer_update"]["allowed_updates"]
            if "address" in allowed:
                customer["address"] = {name: form.get(name) or None for name in _ADDRESS_FIELDS}
            for key in ("email", "name"):
                if key in allowed and key in form:
                    customer[key] = form[key] or None
            ctx.events.emit("customer.updated", customer, previous=before)
            if "tax_id" in allowed and form.get("tax_id"):
                customers.add_tax_id(ctx, customer, tax_ids.type_for(form["tax_id"]),
                                     form["tax_id"])
            notice = "Billing information saved."
        elif action == "cancel" and features["subscription_cancel"]["enabled"]:
            sub = ctx.store.require("subscription", form.get("subscription"))
            if sub["customer"] != customer["id"]:
                raise StripeError(404, "No such subscription.")
            if features["subscription_cancel"]["mode"] == "immediately":
                billing.cancel(ctx, sub)
            else:
                billing.update_subscription(ctx, sub, {"cancel_at_period_end": "true"})
            notice = "Your plan will be canceled."
        else:
            raise StripeError(403, "This portal configuration does not allow that.")
    return _portal(emulator, session_id, notice=notice)
