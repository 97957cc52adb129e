"""Stripe-hosted pages, emulated: Checkout, the hosted invoice (+PDF) and the billing portal.

Buttons on the checkout page cover the outcomes the server must handle: card success,
a delayed SEPA debit (completes unpaid, settles later), a declined card, and cancel.
"""

import html
from urllib.parse import parse_qs

from . import billing, checkout
from .errors import StripeError
from .pricing import format_money, unit_amount_for

_STYLE = """
body{font-family:system-ui,sans-serif;background:#f6f9fc;margin:0;color:#1a1f36}
main{max-width:560px;margin:40px auto;background:#fff;border-radius:8px;padding:32px;
box-shadow:0 2px 8px rgba(0,0,0,.08)}
.banner{background:#ffde92;padding:6px 12px;border-radius:4px;font-size:13px}
table{width:100%;border-collapse:collapse;margin:16px 0}td,th{padding:6px;text-align:left;
border-bottom:1px solid #e3e8ee}.amount{text-align:right}
button{display:block;width:100%;margin:8px 0;padding:12px;font-size:16px;border-radius:6px;
border:1px solid #635bff;background:#635bff;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#635bff}.error{color:#df1b41;font-weight:600}
label{display:block;margin:12px 0 4px}input{width:100%;padding:8px;font-size:15px;
box-sizing:border-box}
"""


def _page(title, body, status=200):
    document = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body><main>"
                f"<p class='banner'>Stripe emulator — test mode, no real payment</p>"
                f"{body}</main></body></html>")
    return status, document.encode(), "text/html; charset=utf-8", {}


def _redirect(location):
    return 303, b"", "text/plain", {"Location": location}


def handle(emulator, method, path, body, base_url):
    parts = [p for p in path.split("/") if p]
    try:
        if len(parts) == 2 and parts[0] == "checkout":
            if method == "POST":
                return _submit_checkout(emulator, parts[1], body, base_url)
            return _checkout(emulator, parts[1])
        if len(parts) == 2 and parts[0] == "invoice":
            if method == "POST":
                return _pay_invoice(emulator, parts[1], base_url)
            return _invoice(emulator, parts[1])
        if len(parts) == 3 and parts[0] == "invoice" and parts[2] == "pdf":
            return _invoice_pdf(emulator, parts[1])
        if len(parts) == 2 and parts[0] == "billing_portal":
            if method == "POST":
                return _portal_action(emulator, parts[1], body, base_url)
            return _portal(emulator, parts[1])
        if not parts:
            return _page("Stripe emulator", "<h1>Stripe emulator</h1><p>API at <code>/v1</code>, "
                                            "controls at <code>/_emulator</code>.</p>")
    except StripeError as error:
        return _page("Not found", f"<h1>{html.escape(error.message)}</h1>", error.status)
    return _page("Not found", "<h1>Not found</h1>", 404)


# -- checkout ----------------------------------------------------------------------------

def _checkout(emulator, session_id, error=None):
    store = emulator.store
    with store.lock:
        session = store.require("checkout.session", session_id)
        rows = []
        for item in session["_line_items"]:
            price = store.get("price", item["price"])
            product = store.get("product", price["product"]) or {"name": price["product"]}
            interval = (price.get("recurring") or {}).get("interval", "month")
            unit = format_money(unit_amount_for(price, item["quantity"]), price["currency"])
            rows.append(
                f"<tr><td>{html.escape(product['name'])}</td><td>{item['quantity']} × {unit}</td>"
                f"<td class='amount'>{format_money(item['amount_total'], price['currency'])}"
                f" / {interval}</td></tr>")
        total = sum(item["amount_total"] for item in session["_line_items"])
        trial = session["_subscription_data"]["trial_period_days"]
    currency = session["currency"] or "eur"
    if session["status"] != "open":
        return _page("Checkout", f"<h1>This checkout session is {session['status']}.</h1>", 410)
    email = html.escape(session["customer_email"] or "")
    trial_note = (f"<p><strong>{trial}-day free trial</strong> — nothing is due today.</p>"
                  if trial else "")
    error_html = f"<p class='error' role='alert'>{html.escape(error)}</p>" if error else ""
    body = f"""
<h1>Subscribe</h1>
<table><thead><tr><th>Product</th><th>Quantity</th><th class='amount'>Amount</th></tr></thead>
<tbody>{''.join(rows)}</tbody>
<tfoot><tr><th colspan='2'>Total due today</th>
<th class='amount' id='total'>{format_money(0 if trial else total, currency)}</th></tr></tfoot>
</table>{trial_note}{error_html}
<form method='post'>
<label for='email'>Email</label>
<input id='email' name='email' type='email' value='{email}' placeholder='buyer@example.com'>
<button name='action' value='paid'>Pay</button>
<button name='action' value='delayed' class='secondary'>Pay with SEPA Direct Debit (delayed)</button>
<button name='action' value='declined' class='secondary'>Pay (card declined)</button>
<button name='action' value='cancel' class='secondary'>Cancel</button>
</form>"""
    return _page("Checkout", body)


def _submit_checkout(emulator, session_id, body, base_url):
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
    action = form.get("action", "paid")
    if action == "cancel":
        with emulator.store.lock:
            session = emulator.store.require("checkout.session", session_id)
        return _redirect(session["cancel_url"] or "/")
    try:
        with emulator.action(base_url) as ctx:
            session = ctx.store.require("checkout.session", session_id)
            checkout.complete(ctx, session, action, email=form.get("email") or None)
    except StripeError as error:
        if error.status == 404:
            raise
        return _checkout(emulator, session_id, error=error.message)
    return _redirect(checkout.success_redirect(session))


# -- hosted invoice ----------------------------------------------------------------------

def _invoice(emulator, invoice_id, notice=None):
    with emulator.store.lock:
        invoice = emulator.store.require("invoice", invoice_id)
        lines = list(invoice["_lines"])
        invoice = dict(invoice)
    rows = "".join(
        f"<tr><td>{html.escape(line['description'] or '')}</td>"
        f"<td class='amount'>{format_money(line['amount'], line['currency'])}</td></tr>"
        for line in lines)
    currency = invoice["currency"]
    pay = ("<form method='post'><button id='pay'>Pay "
           f"{format_money(invoice['amount_remaining'], currency)}</button></form>"
           if invoice["status"] == "open" and invoice["amount_remaining"] > 0 else "")
    notice_html = f"<p class='error' role='alert'>{html.escape(notice)}</p>" if notice else ""
    body = f"""
<h1>Invoice <span id='number'>{html.escape(invoice['number'] or invoice['id'])}</span></h1>
<p>Status: <strong id='status'>{invoice['status']}</strong> · Billed to
{html.escape(invoice['customer_email'] or '')}</p>
<table><tbody>{rows}</tbody><tfoot>
<tr><th>Total</th><th class='amount' id='total'>{format_money(invoice['total'], currency)}</th></tr>
<tr><th>Amount due</th><th class='amount' id='amount-due'>{format_money(invoice['amount_due'], currency)}</th></tr>
<tr><th>Amount paid</th><th class='amount' id='amount-paid'>{format_money(invoice['amount_paid'], currency)}</th></tr>
</tfoot></table>{notice_html}{pay}
<p><a id='pdf' href='{html.escape(invoice['invoice_pdf'] or '')}'>Download PDF</a></p>"""
    return _page(f"Invoice {invoice['number'] or ''}", body)


def _pay_invoice(emulator, invoice_id, base_url):
    """The customer pays an open invoice on the hosted page (with the card on file)."""
    with emulator.action(base_url) as ctx:
        invoice = ctx.store.require("invoice", invoice_id)
        decline = None
        if invoice["status"] == "open":
            decline = billing.collect(ctx, invoice)
            if decline is None:
                billing.invoice_settled(ctx, invoice)
    if decline:
        return _invoice(emulator, invoice_id, notice=billing.DECLINE_MESSAGES.get(
            decline, "Your card was declined."))
    return _redirect(f"/invoice/{invoice_id}")


def _invoice_pdf(emulator, invoice_id):
    with emulator.store.lock:
        invoice = emulator.store.require("invoice", invoice_id)
        lines = [f"Invoice {invoice['number']}  ({invoice['status']})",
                 f"Customer: {invoice['customer_email'] or invoice['customer']}"]
        lines += [f"{line['description']}: {format_money(line['amount'], line['currency'])}"
                  for line in invoice["_lines"]]
        lines.append(f"Total: {format_money(invoice['total'], invoice['currency'])}")
        lines.append(f"Amount due: {format_money(invoice['amount_due'], invoice['currency'])}")
    return 200, _pdf(lines), "application/pdf", {
        "Content-Disposition": f"inline; filename=\"{invoice['number']}.pdf\""}


def _pdf(lines):
    """A minimal one-page PDF 1.4 written by hand: catalog, page tree, one page, one content
    stream and the standard Helvetica font, with a correct cross-reference table."""
    def escape(text):
        text = text.replace("€", "EUR ").encode("latin-1", "replace").decode("latin-1")
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = "BT /F1 12 Tf 50 800 Td 16 TL " + " ".join(
        f"({escape(line)}) Tj T*" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R "
        ">> >> /Contents 4 0 R >>",
        f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
            .encode())
    return bytes(out)


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
        tax_ids = list(customer.get("_tax_ids") or [])
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
    return _page("Billing portal", body)


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
            if "tax_id" in allowed and form.get("tax_id"):
                customer.setdefault("_tax_ids", []).append(form["tax_id"])
            ctx.events.emit("customer.updated", customer, previous=before)
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
