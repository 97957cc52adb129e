"""Plumbing for the dashboard's server-rendered pages: session, language, CSRF, rendering.

Each page handler makes a `WebRequest`, asks it for the signed-in person, checks the form's CSRF
token on POST, and returns `render()` or `redirect()`; the session cookie and security headers are
set here for every page. Pages of a subscription get their `WebRequest`, person and subscription
from the gate (`handlers/gate.py`), which does those checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import azure.functions as func

from services import bootstrap
from services.csrf import CsrfRejected, check
from services.i18n import LANGUAGES, choose_language, has_text, translator
from services.redirects import safe_next
from services.settings import Settings
from services.web_session import Person, SessionStore, WebSession, cookie_header, cookie_name

if TYPE_CHECKING:
    from jinja2 import Environment

PAGES_DIR = Path(__file__).resolve().parent.parent / "templates" / "pages"
_PLACEHOLDER = re.compile(r"\{\w+\}")
LANGUAGE_COOKIE = "smm_lang"

PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Forms may post to us and be redirected on to Stripe's hosted pages (checkout, billing portal).
STRIPE_PAGES = "https://checkout.stripe.com https://billing.stripe.com"


def content_security_policy(settings: Settings) -> str:
    form_targets = f"'self' {STRIPE_PAGES}"
    if settings.stripe_api_base:
        # Where the configured Stripe API serves its hosted pages (the emulator, locally).
        parts = urlsplit(settings.stripe_api_base)
        form_targets += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        f"form-action {form_targets}; frame-ancestors 'none'; base-uri 'none'"
    )


@lru_cache(maxsize=1)
def _environment() -> Environment:
    # Imported here: pages need Jinja2, the license check's cold start does not.
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(loader=FileSystemLoader(PAGES_DIR), autoescape=select_autoescape(["html"]),
                       trim_blocks=True, lstrip_blocks=True)


class NotSignedIn(Exception):
    pass


@dataclass
class WebRequest:
    req: func.HttpRequest
    settings: Settings
    store: SessionStore
    session: WebSession | None
    language: str
    # Set when the session was created or rotated during this request: the cookie must be sent.
    _issue_cookie: bool = field(default=False, init=False)
    _expire_cookie: bool = field(default=False, init=False)

    @classmethod
    def of(cls, req: func.HttpRequest) -> WebRequest:
        settings = bootstrap.settings()
        store = SessionStore(bootstrap.storage(), settings)
        cookies = _cookies(req)
        session = store.load(cookies.get(cookie_name(settings)))
        language = choose_language(req.headers.get("Accept-Language"), cookies.get(LANGUAGE_COOKIE),
                                   settings.default_language)
        return cls(req=req, settings=settings, store=store, session=session, language=language)

    # --- identity -------------------------------------------------------------------------------

    @property
    def person(self) -> Person | None:
        return self.session.person if self.session else None

    def require_person(self) -> Person:
        if self.person is None:
            raise NotSignedIn()
        return self.person

    def sign_in_redirect(self) -> func.HttpResponse:
        """Send someone who is not signed in to sign-in, coming back here afterwards."""
        target = self.req.url.split("://", 1)[-1].split("/", 1)[-1]
        return self.redirect(f"/api/signin?next={quote('/' + target, safe='')}")

    def ensure_session(self) -> WebSession:
        if self.session is None:
            self.session = self.store.new()
            self._issue_cookie = True
        return self.session

    def sign_in(self, person: Person) -> None:
        self.session = self.store.rotate(self.session, person)
        self._issue_cookie = True

    def sign_out(self) -> None:
        if self.session is not None:
            self.store.delete(self.session)
        self.session = None
        self._expire_cookie = True

    def update_session(self, **changes: Any) -> WebSession:
        session = replace(self.ensure_session(), **changes)
        self.store.save(session)
        self.session = session
        return session

    def flash(self, kind: str, message: str) -> None:
        session = self.ensure_session()
        self.update_session(flash=session.flash + ((kind, message),))

    # --- forms ----------------------------------------------------------------------------------

    def form(self) -> dict[str, str]:
        if not hasattr(self, "_form"):
            if self.req.headers.get("Content-Type", "").lower().startswith("multipart/form-data"):
                self._form, self._files = _multipart(self.req.headers["Content-Type"], self.req.get_body())
            else:
                body = self.req.get_body().decode("utf-8", errors="replace")
                self._form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
                self._files = {}
        return self._form

    def files(self) -> dict[str, tuple[str, bytes]]:
        """Uploaded files of a multipart form: field name -> (file name, content)."""
        self.form()
        return self._files

    def check_csrf(self) -> None:
        """Raise CsrfRejected unless the POST carries this session's token from our own origin."""
        check(
            expected_token=self.session.csrf_token if self.session else None,
            sent_token=self.form().get("csrf_token"),
            origin=self.req.headers.get("Origin"),
            fetch_site=self.req.headers.get("Sec-Fetch-Site"),
            base_url=self.settings.public_base_url,
        )

    def next_target(self, default: str = "/api/dashboard") -> str:
        target = self.req.params.get("next")
        if not target and self.req.method == "POST":
            target = self.form().get("next")
        return safe_next(target, default)

    # --- responses ------------------------------------------------------------------------------

    def render(self, template: str, status: int = 200, **context: Any) -> func.HttpResponse:
        flash: tuple[tuple[str, str], ...] = ()
        if self.session is not None and self.session.flash:
            flash = self.session.flash
            self.update_session(flash=())
        t = translator(self.language)
        html = _environment().get_template(template).render(
            t=t,
            lang=self.language,
            languages=LANGUAGES,
            person=self.person,
            csrf_token=self.session.csrf_token if self.session else "",
            flash=flash,
            support_email=self.settings.support_email,
            outbox_available=not self.settings.acs_endpoint,
            # The page's own address (language switch, sign-in); a page rendered in answer to a POST
            # names the GET page it shows instead.
            here=context.pop("here", None) or self.req.url.split("://", 1)[-1].split("/", 1)[-1],
            **context,
        )
        return self._finish(func.HttpResponse(html, status_code=status, mimetype="text/html", charset="utf-8"))

    def redirect(self, location: str, status: int = 303) -> func.HttpResponse:
        return self._finish(func.HttpResponse(status_code=status, headers={"Location": location}))

    def error_page(self, status: int, title: str, message: str) -> func.HttpResponse:
        return self.render("error.html", status=status, title=title, message=message)

    def _finish(self, response: func.HttpResponse) -> func.HttpResponse:
        for name, value in PAGE_HEADERS.items():
            response.headers[name] = value
        response.headers["Content-Security-Policy"] = content_security_policy(self.settings)
        if self._expire_cookie:
            response.headers.add("Set-Cookie", cookie_header(self.settings, "", expire=True))
        if self._issue_cookie and self.session is not None:
            response.headers.add("Set-Cookie", cookie_header(self.settings, self.session.id))
        return response


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Fields and files of a multipart/form-data body (RFC 7578), parsed by the stdlib."""
    from email import policy
    from email.parser import BytesParser

    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", errors="replace") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        # Typed for the old API's RFC 2231 (charset, language, value) tuple; this policy decodes to a str.
        if not name or not isinstance(name, str):
            continue
        # Bytes for a leaf part; None for a nested multipart (typed as a union that includes a Message).
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, content)
        else:
            fields[name] = content.decode(part.get_content_charset() or "utf-8", errors="replace")
    return fields, files


def _cookies(req: func.HttpRequest) -> dict[str, str]:
    jar = SimpleCookie()
    try:
        jar.load(req.headers.get("Cookie", ""))
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def csrf_refused(web: WebRequest, exc: CsrfRejected) -> func.HttpResponse:
    t = translator(web.language)
    return web.error_page(403, t("error.csrf.title"), t(f"error.csrf.{exc.code}"))


def refusal_text(language: str, exc: Exception, *keys: str, **values: object) -> str:
    """Why the rules refused, in the page's language: the text of the first of `keys` the catalogues
    hold (formatted with `values`), else the general text for the refusal's code (`refused.<code>`).
    With neither, an English page shows the service's own sentence and any other page a general one in
    its language: the services' English sentences never reach a German page."""
    t = translator(language)
    for key in (*keys, f"refused.{getattr(exc, 'code', '')}"):
        if has_text(key, values.get("count")):
            try:
                text = t(key, **values)
            except (KeyError, IndexError):  # the text needs a value this refusal does not carry
                continue
            if values or not _PLACEHOLDER.search(text):
                return text
    return str(exc) if language == "en" else t("refused.other")
