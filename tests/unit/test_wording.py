"""The portal's words (issue 15, defect 5; PRODUCT.md 2.9): German in the customer guide's voice ("du")
and with its names (/work/shared/design/customer-guide.de.txt), real plurals in both languages.

Checked in translations/*.json and in the mails (templates/mail); pages take every text from the
catalogues. tests/browser/test_german_pages.py checks the rendered German pages for English words.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from services.i18n import catalog
from services.mail.message import Language, MailMessage, Template
from services.mail.render import TEMPLATE_DIR, render
from tests.unit.test_mail_templates import SAMPLE_PARAMS

# The polite form of address. Lower case, "sie"/"ihre" are "they"/"their" ("ihre Organisation") and
# fine; capitalised they read as addressing the reader, also at the start of a sentence where they mean
# "it"/"their": such a sentence is written another way.
POLITE = re.compile(r"\b(?:Sie|Ihr|Ihre|Ihrem|Ihren|Ihrer|Ihres|Ihnen)\b")
# "license(s)", "Lizenz(en)", "individuelle(s)", "address(es)": a plural shortcut instead of a plural.
SHORTCUT = re.compile(r"[^\W\d_]\((?:s|es|en|n|e|r|in|innen)\)")
# The Outlook error as users see it, and as the guide names it.
OUTLOOK_ERROR = "„Benötigt Admin-Genehmigung“"

GERMAN_MAILS = sorted(TEMPLATE_DIR.glob("*.de.*"))
MAILS = sorted(TEMPLATE_DIR.glob("*.*.*"))


def _mail_text(path: Path) -> str:
    """The words of a mail template, without Jinja's tags (their string literals stay)."""
    return re.sub(r"\{%.*?%\}", " ", path.read_text(encoding="utf-8"), flags=re.S)


def test_the_checks_find_what_they_look_for():
    assert POLITE.findall("Melden Sie sich an. Ihr Abonnement gehört Ihnen.") == ["Sie", "Ihr", "Ihnen"]
    assert not POLITE.search("Benutzer, die sie sehen, fragen ihre IT-Abteilung; sie hilft ihnen.")
    shortcuts = SHORTCUT.findall("2 license(s), 1 Lizenz(en), individuelle(s) Abonnement(s)")
    assert shortcuts == ["e(s)", "z(en)", "e(s)", "t(s)"]
    assert not SHORTCUT.search("(zum Beispiel) Lizenzen (en) ({count})")


def test_german_texts_say_du():
    polite = {key: POLITE.findall(text) for key, text in catalog("de").items() if POLITE.search(text)}
    assert polite == {}, "German texts address the reader with Sie/Ihr/Ihnen; the guide says du"


@pytest.mark.parametrize("path", GERMAN_MAILS, ids=lambda p: p.name)
def test_german_mails_say_du(path):
    assert POLITE.findall(_mail_text(path)) == []


@pytest.mark.parametrize("language", ["en", "de"])
def test_catalogues_have_no_plural_shortcuts(language):
    shortcuts = {key: SHORTCUT.findall(text) for key, text in catalog(language).items() if SHORTCUT.search(text)}
    assert shortcuts == {}, "use key.one / key.other (services/i18n.py) instead"


@pytest.mark.parametrize("path", MAILS, ids=lambda p: p.name)
def test_mails_have_no_plural_shortcuts(path):
    assert SHORTCUT.findall(_mail_text(path)) == []


# --- the guide's names ------------------------------------------------------------------------------

CONSENT_TEXTS = ("consent.title", "consent.what", "setup.step.consent.title", "setup.step.consent.body",
                 "setup.ref.consent.task")


@pytest.mark.parametrize("key", CONSENT_TEXTS)
def test_consent_texts_name_the_outlook_error_as_users_see_it(key):
    assert OUTLOOK_ERROR in catalog("de")[key]
    assert "Need admin approval" in catalog("en")[key]


@pytest.mark.parametrize("mail", ["welcome", "subscription_ready"])
@pytest.mark.parametrize("kind", ["txt", "html"])
def test_mails_name_the_outlook_error_as_users_see_it(mail, kind):
    assert OUTLOOK_ERROR in (TEMPLATE_DIR / f"{mail}.de.{kind}").read_text(encoding="utf-8")


# The guide's name for a thing, and the other names it must not be given in German.
ONE_NAME = {
    "Admin-Zustimmung": re.compile(r"Administratorzustimmung|Administratorgenehmigung|Admin-Genehmigung erteilen"),
    "„Benötigt Admin-Genehmigung“": re.compile(r"Administratorgenehmigung erforderlich|Genehmigung erforderlich"),
    "Add-In": re.compile(r"Add-in"),
    "Microsoft 365-Konto, Microsoft 365-Administrator": re.compile(r"Microsoft-365-"),
    "individuelles Abonnement": re.compile(r"Einzelabonnement"),
    "Abonnementinhaber": re.compile(r"Inhaber des Abonnements|\b(?:den|der|dem|neuen|als) Inhaber\b"),
    "Änderungsprotokoll": re.compile(r"(?<!Änderungs)[Pp]rotokoll"),
    "Kulanzfrist": re.compile(r"Kulanzzeit"),
}


def test_german_texts_use_one_name_per_thing():
    texts = {f"translations/de.json {key}": text for key, text in catalog("de").items()}
    texts |= {f"templates/mail/{p.name}": _mail_text(p) for p in GERMAN_MAILS}
    other_names = [f"{where}: {found.group(0)!r} (the guide's name: {name})"
                   for name, pattern in ONE_NAME.items() for where, text in texts.items()
                   if (found := pattern.search(text))]
    assert other_names == []


# What the guide calls the places and actions the portal names too.
GUIDE_NAMES = {
    "nav.consent": "Admin-Zustimmung",
    "setup.step.consent.name": "Admin-Zustimmung",
    "setup.ref.install.where": "Microsoft 365 Admin Center > Einstellungen > Integrierte Apps",
    "setup.step.assign.action": "Lizenzen zuweisen",
    "subscription.change_quantity": "Lizenzanzahl erhöhen",
    "delegates.invite.heading": "Delegierten Administrator hinzufügen",
    "invitation.accept": "Einladung annehmen",
    "invitation.delegate.heading": "Einladung zur Delegation",
    "billing.title": "Rechnungen und Abrechnung",
    "merge.title": "Zusammenführen individueller Abonnements",
    "permission.name.licenses.assign": "Lizenzen zuweisen/entziehen",
    "permission.name.subscription.view": "Abonnement anzeigen",
    "permission.name.quantity.manage": "Menge verwalten",
    "permission.name.billing.manage": "Abrechnung verwalten",
    "role.owner": "Abonnementinhaber",
    "role.delegate": "Delegierter Administrator",
}


@pytest.mark.parametrize("key", GUIDE_NAMES)
def test_german_portal_uses_the_guides_names(key):
    assert catalog("de")[key] == GUIDE_NAMES[key]


def test_the_audit_log_has_one_name_wherever_it_is_linked():
    de = catalog("de")
    assert {de["audit.title"], de["subscription.audit"], de["home.action.audit"], de["licenses.audit_link"]} == {
        "Änderungsprotokoll"}


# --- real plurals in the mails ------------------------------------------------------------------------


@pytest.mark.parametrize("template", get_args(Template))
@pytest.mark.parametrize("language", get_args(Language))
def test_mails_count_in_real_plurals(template, language):
    product = r"(?:SecureMailMerge[- ])?"
    wrong = {"en": re.compile(rf"\b1 {product}licenses\b|\b(?!1 )\d+ {product}license\b(?!-)"),
             "de": re.compile(rf"\b1 {product}Lizenzen\b|\b(?!1 )\d+ {product}Lizenz\b(?!-)")}[language]
    for count in (1, 2, 12):
        params = {**SAMPLE_PARAMS, "quantity": count, "over": count, "assigned": count + 1, "before": count + 1}
        mail = render(MailMessage(id=f"plural-{template}-{language}-{count}", template=template,
                                  to="alice@contoso.example", language=language, params=params),
                      support_email="help@securemailmerge.example", base_url="http://localhost:7071")
        for body in (mail.subject, mail.text, mail.html):
            assert not wrong.search(body), f"{template}.{language} with {count}: {wrong.search(body)}"
