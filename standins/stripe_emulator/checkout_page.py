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
            return _invoice(emulator, parts[1])
        if len(parts) == 3 and parts[0] == "invoice" and parts[2] == "pdf":
            return _invoice_pdf(emulator, parts[1])
        if len(parts) == 2 and parts[0] == "billing_portal":
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

def _invoice(emulator, invoice_id):
    with emulator.store.lock:
        invoice = emulator.store.require("invoice", invoice_id)
        lines = list(invoice["_lines"])
    rows = "".join(
        f"<tr><td>{html.escape(line['description'] or '')}</td>"
        f"<td class='amount'>{format_money(line['amount'], line['currency'])}</td></tr>"
        for line in lines)
    body = f"""
<h1>Invoice {html.escape(invoice['number'] or invoice['id'])}</h1>
<p>Status: <strong>{invoice['status']}</strong> · Billed to {html.escape(invoice['customer_email'] or '')}</p>
<table><tbody>{rows}</tbody><tfoot><tr><th>Total</th>
<th class='amount'>{format_money(invoice['total'], invoice['currency'])}</th></tr></tfoot></table>
<p><a href='{html.escape(invoice['invoice_pdf'] or '')}'>Download PDF</a></p>"""
    return _page("Invoice", body)


def _invoice_pdf(emulator, invoice_id):
    with emulator.store.lock:
        invoice = emulator.store.require("invoice", invoice_id)
        lines = [f"Invoice {invoice['number']}  ({invoice['status']})",
                 f"Customer: {invoice['customer_email'] or invoice['customer']}"]
        lines += [f"{line['description']}: {format_money(line['amount'], line['currency'])}"
                  for line in invoice["_lines"]]
        lines.append(f"Total: {format_money(invoice['total'], invoice['currency'])}")
    return 200, _pdf(lines), "application/pdf", {
        "Content-Disposition": f"inline; filename=\"{invoice['number']}.pdf\""}


def _pdf(lines):
    """A minimal one-page PDF; enough for browsers and 'is this a PDF' checks."""
    def escape(text):
        text = text.encode("latin-1", "replace").decode("latin-1")
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

def _portal(emulator, session_id):
    store = emulator.store
    with store.lock:
        session = store.require("billing_portal.session", session_id)
        customer = store.require("customer", session["customer"])
        invoices = [i for i in store.all("invoice") if i["customer"] == customer["id"]]
        subs = [s for s in store.all("subscription") if s["customer"] == customer["id"]
                and s["status"] not in billing.ENDED]
    sub_rows = "".join(f"<li>{s['id']} — {s['status']}</li>" for s in subs)
    invoice_rows = "".join(
        f"<tr><td><a href='{html.escape(i['hosted_invoice_url'])}'>{html.escape(i['number'])}"
        f"</a></td><td>{i['status']}</td><td class='amount'>"
        f"{format_money(i['total'], i['currency'])}</td></tr>" for i in invoices)
    back = html.escape(session["return_url"] or "/")
    body = f"""
<h1>Billing for {html.escape(customer['email'] or customer['id'])}</h1>
<h2>Payment method</h2><p>Visa •••• 4242 (emulated)</p>
<h2>Subscriptions</h2><ul>{sub_rows}</ul>
<h2>Invoice history</h2><table><tbody>{invoice_rows}</tbody></table>
<p><a id='return' href='{back}'>Return</a></p>"""
    return _page("Billing portal", body)
