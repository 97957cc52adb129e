"""The local mail outbox as a dashboard page (only where mail goes to the outbox, never with ACS)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import azure.functions as func

from handlers.blueprint import new_blueprint
from handlers.responses import when_configured
from handlers.web import NotSignedIn, WebRequest
from services.i18n import translator

bp = new_blueprint()

_MAIL_LANGUAGE = re.compile(r'<html lang="([A-Za-z-]{2,12})"')


@bp.route(route="dev/outbox", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def outbox_page(req: func.HttpRequest) -> func.HttpResponse:
    web = WebRequest.of(req)
    t = translator(web.language)
    # Settings allow an outbox (no ACS endpoint) only in local development; with ACS it does not exist.
    if web.settings.acs_endpoint:
        return web.error_page(404, t("error.not_found.title"), t("outbox.disabled"))
    try:
        web.require_person()
    except NotSignedIn:
        return web.sign_in_redirect()
    directory = Path(web.settings.mail_outbox_dir)
    files = sorted(directory.glob("*.json"), reverse=True)[:200] if directory.is_dir() else []
    mails = [json.loads(p.read_text(encoding="utf-8")) for p in files]
    for mail in mails:
        # Each mail is in its recipient's language (its HTML says which): the page marks it so.
        found = _MAIL_LANGUAGE.search(mail.get("html") or "")
        mail["language"] = found.group(1) if found else ""
    return web.render("outbox.html", mails=mails, directory=str(directory))
