"""Page requests as a signed-in browser makes them, without a browser: a stored dashboard session (cookie
and CSRF token) and form posts through real HTTP, redirects returned rather than followed."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

from services.web_session import Person, SessionStore, cookie_name


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def signed_in(stack, person: Person) -> tuple[str, str]:
    """(Cookie header value, CSRF token) of a new dashboard session for `person`."""
    session = SessionStore(stack.storage(), stack.settings).new(person=person)
    return f"{cookie_name(stack.settings)}={session.id}", session.csrf_token


def page(target, method: str, path: str, cookie: str | None = None, form: dict | None = None,
         headers: dict | None = None) -> tuple[int, dict, str]:
    """(status, headers, body text) of a page request to `target` (a stack, or its base URL); redirects are
    returned, not followed. A form post carries the page's own Origin, as a browser's does."""
    base_url = getattr(target, "url", target)
    data = urllib.parse.urlencode(form).encode() if form is not None else (b"" if method == "POST" else None)
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        if not request.has_header("Origin"):
            request.add_header("Origin", base_url)
    if cookie:
        request.add_header("Cookie", cookie)
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8", "replace")
