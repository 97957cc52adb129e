"""The frame every emulated Stripe-hosted page shares (checkout, invoice, billing portal)."""

import html

STYLE = """
body{font-family:system-ui,sans-serif;background:#f6f9fc;margin:0;color:#1a1f36}
main{max-width:560px;margin:40px auto;background:#fff;border-radius:8px;padding:32px;
box-shadow:0 2px 8px rgba(0,0,0,.08)}
.banner{background:#ffde92;padding:6px 12px;border-radius:4px;font-size:13px}
table{width:100%;border-collapse:collapse;margin:16px 0}td,th{padding:6px;text-align:left;
border-bottom:1px solid #e3e8ee}.amount{text-align:right}
button{display:block;width:100%;margin:8px 0;padding:12px;font-size:16px;border-radius:6px;
border:1px solid #635bff;background:#635bff;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#635bff}.error{color:#df1b41;font-weight:600}
label{display:block;margin:12px 0 4px}input,select{width:100%;padding:8px;font-size:15px;
box-sizing:border-box}fieldset{border:1px solid #e3e8ee;border-radius:6px;margin:16px 0}
label.inline{display:inline}input[type=checkbox]{width:auto}.note{color:#697386;font-size:14px}
address{font-style:normal}
"""


def page(title, body, status=200):
    document = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><main>"
                f"<p class='banner'>Stripe emulator — test mode, no real payment</p>"
                f"{body}</main></body></html>")
    return status, document.encode(), "text/html; charset=utf-8", {}


def redirect(location):
    return 303, b"", "text/plain", {"Location": location}
