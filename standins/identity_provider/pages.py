"""HTML pages of the stand-in: the account chooser, admin consent, form_post and error pages.

Plain, accessible markup: one form per page, real <button>s (keyboard and screen-reader friendly, and
easy for browser tests to find by accessible name: "Sign in as Alice Anders (alice@contoso.example)").
"""

from __future__ import annotations

from html import escape

from .directory import Tenant, User

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem;
       color: #1b1b1b; background: #fff; line-height: 1.4; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.5rem; }
.note { color: #505050; font-size: .9rem; }
ul { list-style: none; padding: 0; }
li { margin: .4rem 0; }
button { width: 100%; text-align: left; padding: .6rem .8rem; font: inherit; cursor: pointer;
         border: 1px solid #8a8886; border-radius: 4px; background: #fff; }
button:hover { background: #f3f2f1; }
button:focus-visible { outline: 3px solid #0f6cbd; outline-offset: 2px; }
button.hinted { border: 2px solid #0f6cbd; }
button.secondary { width: auto; text-align: center; }
.account { display: block; font-weight: 600; } .detail { display: block; color: #505050; font-size: .9rem; }
"""


def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    ).encode()


def _hidden(params: dict[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in params.items()
    )


def _user_label(user: User) -> str:
    mail = f" · mail {escape(user.email)}" if user.email and user.email != user.preferred_username else ""
    admin = " · administrator" if user.admin else ""
    return (
        f'<span class="account">{escape(user.name)}</span>'
        f'<span class="detail">{escape(user.preferred_username)}{mail}{admin}</span>'
    )


def _account_list(tenants: list[Tenant], params: dict[str, str], action: str, verb: str,
                  hinted: User | None, only_admins: bool = False) -> str:
    sections = []
    for tenant in tenants:
        users = [u for u in tenant.users if u.admin or not only_admins]
        if not users:
            continue
        items = []
        for user in users:
            is_hinted = hinted is not None and user == hinted
            items.append(
                "<li><button type=\"submit\" name=\"select_user\" "
                f"value=\"{escape(user.tenant_id)}:{escape(user.oid)}\""
                f" aria-label=\"{escape(verb)} {escape(user.name)} ({escape(user.preferred_username)})\""
                + (' class="hinted" autofocus' if is_hinted else "")
                + f">{_user_label(user)}</button></li>"
            )
        sections.append(
            f"<section aria-labelledby=\"t-{escape(tenant.id)}\">"
            f"<h2 id=\"t-{escape(tenant.id)}\">{escape(tenant.display_name)} "
            f"<span class=\"note\">({escape(tenant.id)})</span></h2><ul>{''.join(items)}</ul></section>"
        )
    if not sections:
        sections.append("<p>No accounts are available for this authority.</p>")
    return (
        f'<form method="post" action="{escape(action)}">{_hidden(params)}{"".join(sections)}</form>'
    )


def account_chooser(tenants: list[Tenant], params: dict[str, str], action: str, client_id: str,
                    hinted: User | None) -> bytes:
    body = (
        "<h1>Pick an account</h1>"
        f"<p class=\"note\">Local identity provider (development only). Application "
        f"<code>{escape(client_id)}</code> asks you to sign in. No password: choosing an account signs "
        "in as that user.</p>"
        + _account_list(tenants, params, action, "Sign in as", hinted)
    )
    return _page("Sign in – local identity provider", body)


def admin_consent(tenants: list[Tenant], params: dict[str, str], action: str, client_id: str,
                  scope: str) -> bytes:
    body = (
        "<h1>Permissions requested</h1>"
        f"<p>Application <code>{escape(client_id)}</code> asks an administrator to grant, for the whole "
        f"organization: <code>{escape(scope or 'its configured permissions')}</code>.</p>"
        "<p class=\"note\">Choose the administrator who accepts.</p>"
        + _account_list(tenants, params, action, "Accept as", None, only_admins=True)
        + f'<form method="post" action="{escape(action)}">{_hidden(params)}'
        '<button type="submit" class="secondary" name="decision" value="cancel">Cancel</button></form>'
    )
    return _page("Admin consent – local identity provider", body)


def form_post(redirect_uri: str, fields: dict[str, str]) -> bytes:
    """response_mode=form_post: the browser POSTs the result to the redirect URI."""
    body = (
        f'<form method="post" action="{escape(redirect_uri)}" id="response">{_hidden(fields)}'
        '<noscript><p>Script is disabled; continue manually.</p>'
        '<button type="submit">Continue</button></noscript></form>'
        "<script>document.getElementById('response').submit()</script>"
    )
    return _page("Working…", body)


def message(title: str, text: str) -> bytes:
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>")
