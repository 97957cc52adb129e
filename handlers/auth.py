"""Sign-in, the MSAL callback, sign-out, the language switch, and expired-session cleanup."""

from __future__ import annotations

import logging

import azure.functions as func

from handlers.blueprint import new_blueprint
from handlers.responses import when_configured
from handlers.web import LANGUAGE_COOKIE, WebRequest, csrf_refused
from services import bootstrap
from services.csrf import CsrfRejected
from services.i18n import LANGUAGES, translator
from services.redirects import safe_next
from services.web_session import SessionStore

log = logging.getLogger(__name__)
bp = new_blueprint()


@bp.route(route="signin", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def signin(req: func.HttpRequest) -> func.HttpResponse:
    from services.identity.signin import start

    web = WebRequest.of(req)
    flow = start(web.settings, login_hint=req.params.get("login_hint"))
    # The flow (state, nonce, PKCE verifier) waits in a server-side session for the callback.
    web.update_session(pending={**(web.session.pending if web.session else {}), "auth_flow": flow,
                                "next": web.next_target()})
    return web.redirect(flow["auth_uri"], status=302)


@bp.route(route="auth/callback", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def auth_callback(req: func.HttpRequest) -> func.HttpResponse:
    from services.identity.signin import SignInFailed, finish

    web = WebRequest.of(req)
    t = translator(web.language)
    pending = web.session.pending if web.session else {}
    flow = pending.get("auth_flow")
    if not flow:
        return web.error_page(400, t("signin.failed.title"), t("signin.failed.no_flow"))
    # One flow, one attempt: a replayed callback finds nothing to redeem.
    web.update_session(pending={k: v for k, v in pending.items() if k != "auth_flow"})
    try:
        person = finish(web.settings, flow, dict(req.params))
    except SignInFailed as exc:
        return web.error_page(400, t("signin.failed.title"), t(f"signin.failed.{exc.code}", code=exc.detail))
    web.sign_in(person)
    log.info("signed in tid=%s oid=%s", person.tid, person.oid)
    return web.redirect(safe_next(pending.get("next")))


@bp.route(route="signout", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def signout(req: func.HttpRequest) -> func.HttpResponse:
    web = WebRequest.of(req)
    try:
        web.check_csrf()
    except CsrfRejected as exc:
        return csrf_refused(web, exc)
    web.sign_out()
    return web.render("signed_out.html")


@bp.route(route="language", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def language(req: func.HttpRequest) -> func.HttpResponse:
    """Switch the page language; only a cookie changes, so a plain link is enough."""
    web = WebRequest.of(req)
    chosen = req.params.get("lang")
    response = web.redirect(web.next_target())
    if chosen in LANGUAGES:
        secure = "" if web.settings.uses_localhost_url else "; Secure"
        response.headers.add("Set-Cookie",
                             f"{LANGUAGE_COOKIE}={chosen}; Path=/; Max-Age=31536000; SameSite=Lax{secure}")
    return response


@bp.timer_trigger(arg_name="timer", schedule="0 */15 * * * *", run_on_startup=False)
def purge_sessions(timer: func.TimerRequest) -> None:
    removed = SessionStore(bootstrap.storage(), bootstrap.settings()).purge_expired()
    log.info("removed %d expired sessions", removed)
