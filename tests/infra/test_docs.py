"""The operator documents agree with the code and with each other.

README.md (settings, Entra ID, deploying), infra/SETTINGS.md and docs/operations.md (the runbook) are what
an operator who never saw the code follows, in order, from an empty subscription to a first license check.
Each test names the mistake it keeps out.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

from services.settings import setting_fields
from tests.infra.templates import INFRA, template

ROOT = INFRA.parent
README = ROOT / "README.md"
SETTINGS_DOC = INFRA / "SETTINGS.md"
RUNBOOK = ROOT / "docs" / "operations.md"

STRIPE_VERSION = re.compile(r"\b20\d\d-\d\d-\d\d\.[a-z]+\b")
GUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _section(path: Path, heading: str) -> str:
    """From the heading line to the next heading of the same or a higher level (code blocks skipped)."""
    lines = _text(path).splitlines(keepends=True)
    start = level = None
    fenced = False
    for index, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"(#+) (.*?)\s*$", line)
        if match is None:
            continue
        if start is None and match.group(2) == heading:
            start, level = index, len(match.group(1))
        elif start is not None and level is not None and len(match.group(1)) <= level:
            return "".join(lines[start:index])
    assert start is not None, f"{path.name}: no heading {heading!r}"
    return "".join(lines[start:])


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- Stripe API version: one source of truth (services/settings.py) -------------------------------


def test_every_document_states_the_codes_stripe_api_version():
    """The webhook endpoint must be created with the version the SDK calls Stripe with."""
    default = next(s.default for s in setting_fields() if s.name == "stripe_api_version")
    for path in (README, SETTINGS_DOC, RUNBOOK):
        assert default in _text(path), f"{path.name} does not state {default}"
        assert set(STRIPE_VERSION.findall(_text(path))) == {default}, f"{path.name} names another Stripe version"
    sample = json.loads(_text(ROOT / "local.settings.sample.json"))["Values"]
    assert sample.get("STRIPE_API_VERSION", default) == default


def test_the_template_adds_no_stripe_api_version_of_its_own():
    """Unset, the setting is empty in Azure and the code default applies: no second default to drift."""
    assert template("main")["parameters"]["stripeApiVersion"]["default"] == ""
    given = json.loads(_text(INFRA / "main.parameters.json"))["parameters"]["stripeApiVersion"]["value"]
    assert given == "${STRIPE_API_VERSION}"


# --- webhook events: generated from services/billing_events._HANDLERS -----------------------------


def test_the_runbook_subscribes_the_webhook_to_exactly_the_events_the_code_handles():
    stripe_step = _section(RUNBOOK, "10. Connect Stripe")
    listed = set(re.findall(r"`((?:checkout|customer|invoice|subscription_schedule)\.[a-z_.]+)`", stripe_step))
    handled = set(_script("webhook_events_doc").events())
    assert listed == handled, f"missing: {sorted(handled - listed)}, not handled: {sorted(listed - handled)}"


def test_the_generated_event_list_is_current():
    generator = _script("webhook_events_doc")
    text = _text(RUNBOOK)
    assert generator.render(text) == text, "run .venv/bin/python scripts/webhook_events_doc.py"
    assert generator.documented(text) == generator.events()


# --- Entra ID app registration: README and runbook say the same -----------------------------------


def _entra_steps() -> dict[str, str]:
    return {
        "README.md": _section(README, "Entra ID app registration"),
        "docs/operations.md": _section(RUNBOOK, "2. Register the app in Microsoft Entra ID")
        + _section(RUNBOOK, "6. Finish the app registration"),
    }


def test_readme_and_runbook_register_the_same_app_id_uri_and_office_clients():
    uris, clients = {}, {}
    for name, text in _entra_steps().items():
        uris[name] = set(re.findall(r"`(api://[^`]+)`", text))
        clients[name] = set(GUID.findall(text))
    assert uris["README.md"] == uris["docs/operations.md"], uris
    # Office SSO requires the App ID URI on the add-in's own domain, never the licensing host.
    assert uris["README.md"] == {"api://<add-in domain>/<client id>"}, uris
    assert clients["README.md"] == clients["docs/operations.md"], clients
    assert clients["README.md"] >= {
        "d3590ed6-52b3-4102-aeff-aad2292ab01c",  # Microsoft Office
        "bc59ab01-8403-45c6-8796-ac3ef710b3e3",  # Outlook on the web
        "ea5a67f6-b6f3-4338-b240-c655ddc3cc8e",  # all Microsoft Office application endpoints
    }


def test_both_register_nested_app_authentication_and_publisher_verification():
    for name, text in _entra_steps().items():
        assert "brk-multihub://<add-in domain>" in text, f"{name}: the SPA redirect NAA needs"
        assert "Single-page application" in text, f"{name}: brk-multihub is a SPA redirect"
        assert "publisher verification" in text.lower(), f"{name}: multi-tenant user consent needs it"


# --- secrets never on a command line ---------------------------------------------------------------


def test_no_secret_value_is_passed_on_the_command_line():
    """`--value '<secret>'` lands in the shell history and in the process list."""
    for path in (README, RUNBOOK):
        for line in _text(path).splitlines():
            if "az keyvault secret set" in line:
                assert "--value" not in line, f"{path.name}: {line.strip()}"


# --- the order of the first deployment -------------------------------------------------------------


def _first(text: str, needle: str) -> int:
    index = text.find(needle)
    assert index >= 0, f"the runbook does not say {needle!r}"
    return index


def test_first_deployment_stores_secrets_then_refreshes_references_then_deploys():
    first = _section(RUNBOOK, "First deployment")
    stored = _first(first, "scripts/set_secret.sh lease-signing-keys")
    refreshed = _first(first, "configreferences/appsettings/refresh")
    deployed = _first(first, "\nazd deploy")
    assert stored < refreshed < deployed


def test_first_deployment_says_that_azd_up_stops_at_the_secrets_check():
    first = _section(RUNBOOK, "First deployment")
    assert re.search(r"first `azd up` stops at the secrets check, by design", first)
    assert "check-secrets" in first


def test_rehearsal_runs_what_if_before_provisioning():
    first = _section(RUNBOOK, "First deployment")
    assert _first(first, "az deployment sub what-if") < _first(first, "\nazd provision")


def test_recovering_the_vault_after_azd_down_recreates_the_resource_group_first():
    teardown = _section(RUNBOOK, "Tearing down")
    assert _first(teardown, "az group create") < _first(teardown, "az keyvault recover")
