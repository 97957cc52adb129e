"""The "Need admin approval" page, the redirect to Entra's admin consent, and its callback."""

from __future__ import annotations

import logging
import secrets

import azure.functions as func

from handlers.blueprint import new_blueprint
from handlers.responses import when_configured
from handlers.web import NotSignedIn, WebRequest
from services import bootstrap, consent
from services.i18n import translator
from services.web_session import Person

log = logging.getLogger(__name__)
bp = new_blueprint()


@bp.route(route="consent", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def consent_page(req: func.HttpRequest) -> func.HttpResponse:
    web = WebRequest.of(req)
    granted_at = consent.granted(bootstrap.storage(), web.person.tid) if web.person else None
    return web.render("consent.html", granted_at=granted_at)


@bp.route(route="consent/start", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def consent_start(req: func.HttpRequest) -> func.HttpResponse:
    web = WebRequest.of(req)
    try:
        admin = web.require_person()
    except NotSignedIn:
        return web.sign_in_redirect()
    state = secrets.token_urlsafe(24)
    # Signed in, so the session exists: ensure_session() returns it as it is.
    web.update_session(pending={**web.ensure_session().pending, "consent_state": state})
    return web.redirect(consent.consent_url(web.settings, admin.tid, state), status=302)


@bp.route(route="consent/callback", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def consent_callback(req: func.HttpRequest) -> func.HttpResponse:
    web = WebRequest.of(req)
    t = translator(web.language)
    try:
        admin = web.require_person()
    except NotSignedIn:
        return web.error_page(400, t("consent.failed.title"), t("consent.error.session"))
    pending = dict(web.ensure_session().pending)  # signed in: the session exists
    expected_state = pending.pop("consent_state", None)
    web.update_session(pending=pending)
    if not expected_state or req.params.get("state") != expected_state:
        return web.error_page(400, t("consent.failed.title"), t("consent.error.state"))
    if req.params.get("error"):
        error, description = req.params.get("error", ""), req.params.get("error_description", "")
        key = consent.explain(error, description)
        # Entra's description is English: an English page quotes it, any other page Entra's error code.
        code = consent.error_code(error, description)
        return web.render(
            "consent_result.html", status=400, ok=False, explanation=t(key),
            detail=description if web.language == "en" else t("consent.details.code", code=code),
        )
    # The tenant in the query is only believed when it is the signed-in admin's own tenant.
    if req.params.get("admin_consent", "").lower() != "true" or req.params.get("tenant", "").lower() != admin.tid:
        return web.error_page(400, t("consent.failed.title"), t("consent.error.wrong_tenant"))
    # And even then the query proves nothing (anyone can type it): Entra must confirm it.
    return _confirmation(web, admin)


@bp.route(route="consent/check", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def consent_check(req: func.HttpRequest) -> func.HttpResponse:
    """Ask Entra again whether the signed-in person's organisation has consented ("Check again")."""
    web = WebRequest.of(req)
    try:
        person = web.require_person()
    except NotSignedIn:
        return web.sign_in_redirect()
    return _confirmation(web, person)


def _confirmation(web: WebRequest, person: Person) -> func.HttpResponse:
    """Record the consent if Entra confirms it, and say what happened."""
    t = translator(web.language)
    outcome = consent.confirm(bootstrap.storage(), bootstrap.entra(), person)
    if outcome is consent.Confirmation.CONFIRMED:
        log.info("admin consent confirmed and recorded for tenant %s", person.tid)
        return web.render("consent_result.html", ok=True, explanation=t("consent.done"), detail="")
    if outcome is consent.Confirmation.NOT_YET:
        log.info("admin consent for tenant %s not confirmed by Entra", person.tid)
        return web.render("consent_result.html", ok=False, explanation=t("consent.not_confirmed"), detail="",
                          check_again=True)
    response = web.render("consent_result.html", status=503, ok=False, explanation=t("consent.unavailable"),
                          detail="", check_again=True)
    response.headers["Retry-After"] = "30"
    return response
