"""The Function App's app settings, built by value exactly as the templates set them, load in the app.

An operator's azd environment (the values docs/operations.md has them set) goes through
infra/main.parameters.json the way azd substitutes it, then through main.bicep, the modules and the site's
`appSettings` loop (tests/infra/bicep_eval.py), with sample values for what Azure assigns (endpoints,
client ids). Key Vault references are resolved to sample secrets, as the platform does once the operator has
stored them. The app's own settings loader must then accept the result, with the production rules on.
"""

from __future__ import annotations

import importlib.util
import json
import re
import secrets
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.settings import Settings, SettingsError, load_settings, setting_fields
from tests.infra.bicep_eval import Deployment, Scope, module_scope, resource_property
from tests.infra.templates import INFRA, template

CLIENT_ID = "5b1f7a3e-8c2d-4e6f-9a0b-1c2d3e4f5a6b"
ADDIN_DOMAIN = "addin.contoso.example"

# What the runbook (docs/operations.md, "First deployment") has the operator set; azd sets the AZURE_* ones.
AZD_ENVIRONMENT = {
    "AZURE_ENV_NAME": "licensing-prod",
    "AZURE_LOCATION": "westeurope",
    "AZURE_PRINCIPAL_ID": "9c4e1d2a-3b5f-4a6c-8d7e-0f1a2b3c4d5e",
    "SUPPORT_EMAIL": "support@contoso.example",
    "ENTRA_CLIENT_ID": CLIENT_ID,
    "API_AUDIENCES": f"{CLIENT_ID},api://{ADDIN_DOMAIN}/{CLIENT_ID}",
    "ADDIN_ORIGINS": f"https://{ADDIN_DOMAIN}",
    "ALERT_EMAIL": "operations@contoso.example",
    "EMAIL_DATA_LOCATION": "Europe",
}

# The interim webhook secret the runbook stores until the Stripe endpoint exists: the app must start with it.
INTERIM_WEBHOOK_SECRET = "whsec_not_set_yet"


def _lease_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _sample_secrets(webhook_secret: str) -> dict[str, str]:
    """Key Vault secret name -> a value of the shape the runbook tells the operator to store."""
    return {
        "session-secret": secrets.token_hex(32),
        "entra-client-secret": "Q8x" + "~" + secrets.token_urlsafe(30),
        "stripe-secret-key": "sk_" + "live_" + secrets.token_urlsafe(24),
        "stripe-webhook-secrets": webhook_secret,
        "lease-signing-keys": _lease_key(),
    }


def _what_if_parameters() -> ModuleType:
    path = INFRA.parent / "scripts" / "what_if_parameters.py"
    spec = importlib.util.spec_from_file_location("what_if_parameters", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _azd_parameters(environment: dict[str, str]) -> dict[str, Any]:
    """main.parameters.json with `${NAME}` / `${NAME=default}` substituted as azd does, typed per main.bicep.

    The same substitution the deployment rehearsal uses (scripts/what_if_parameters.py).
    """
    given = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    types = {name: spec["type"] for name, spec in template("main")["parameters"].items()}
    return {name: spec["value"] for name, spec in _what_if_parameters().fill(given, environment, types).items()}


def _decorator_problems(parameters: dict[str, Any]) -> list[str]:
    """What ARM would refuse before deploying anything: @minLength, @maxLength, @allowed."""
    problems = []
    for name, spec in template("main")["parameters"].items():
        if name not in parameters:
            continue
        value = parameters[name]
        for decorator in spec["decorators"]:
            kind, argument = decorator["type"], decorator.get("argument")
            if kind == "min_length" and len(value) < argument:
                problems.append(f"{name}: shorter than {argument}")
            elif kind == "max_length" and len(value) > argument:
                problems.append(f"{name}: longer than {argument}")
            elif kind == "allowed" and value not in argument:
                problems.append(f"{name}: {value!r} not in {argument}")
    return problems


def _main(environment: dict[str, str]) -> Scope:
    return Scope("main", _azd_parameters(environment), Deployment(location=environment["AZURE_LOCATION"]))


def _app_settings(main: Scope) -> dict[str, str]:
    function_app = module_scope(main, "functionApp")
    pairs = resource_property(function_app, "site", "properties", "siteConfig", "appSettings")
    names = [pair["name"] for pair in pairs]
    assert len(names) == len(set(names)), "an app setting is set twice"
    return {pair["name"]: str(pair["value"]) for pair in pairs}


def _resolve_key_vault_references(settings: dict[str, str], vault_uri: str, values: dict[str, str]) -> dict[str, str]:
    out = {}
    for name, value in settings.items():
        match = re.fullmatch(r"@Microsoft\.KeyVault\(SecretUri=(https://[^/]+/)secrets/([a-z0-9-]+)/\)", value)
        if value.startswith("@Microsoft.KeyVault(") and not match:
            raise AssertionError(f"{name}: not a versionless SecretUri reference: {value}")
        if match:
            assert match.group(1) == vault_uri, f"{name}: points at {match.group(1)}, not the template's vault"
            value = values[match.group(2)]
        out[name] = value
    return out


def _loaded(environment: dict[str, str] = AZD_ENVIRONMENT, webhook_secret: str = "whsec_" + "a1B2c3" * 5,
            **replace: str) -> Settings:
    main = _main(environment)
    vault_uri = main.lookup("keyVault")["outputs"]["uri"]
    settings = _resolve_key_vault_references(_app_settings(main), vault_uri, _sample_secrets(webhook_secret))
    return load_settings(environ=settings | replace)


def test_sample_environment_passes_the_parameter_decorators():
    assert _decorator_problems(_azd_parameters(AZD_ENVIRONMENT)) == []


@pytest.mark.parametrize("missing", ["SUPPORT_EMAIL", "ENTRA_CLIENT_ID", "API_AUDIENCES"])
def test_a_missing_required_value_stops_the_deployment_before_anything_is_created(missing):
    environment = {k: v for k, v in AZD_ENVIRONMENT.items() if k != missing}
    assert _decorator_problems(_azd_parameters(environment))


def test_the_app_loads_the_settings_the_template_sets():
    settings = _loaded()
    assert settings.environment == "production" and not settings.is_local
    assert settings.entra_client_id == CLIENT_ID
    assert settings.api_audiences == [CLIENT_ID, f"api://{ADDIN_DOMAIN}/{CLIENT_ID}"]
    assert settings.addin_origins == [f"https://{ADDIN_DOMAIN}"]
    assert settings.storage_table_uri and settings.storage_queue_uri and not settings.storage_connection_string


def test_production_rules_hold():
    settings = _loaded()
    assert urlsplit(settings.entra_authority).hostname == "login.microsoftonline.com"
    assert settings.public_base_url.startswith("https://") and not settings.uses_localhost_url
    assert settings.acs_endpoint and settings.acs_endpoint.startswith("https://") and not settings.acs_access_key
    assert settings.stripe_api_base is None
    assert settings.lease_signing_keys
    # Code defaults apply for every tuning value left unset (empty in the template).
    assert settings.stripe_api_version == next(s.default for s in setting_fields() if s.name == "stripe_api_version")


def test_the_interim_webhook_secret_of_the_runbook_lets_the_app_start():
    assert _loaded(webhook_secret=INTERIM_WEBHOOK_SECRET).stripe_webhook_secrets == [INTERIM_WEBHOOK_SECRET]
    assert INTERIM_WEBHOOK_SECRET in (INFRA.parent / "docs" / "operations.md").read_text(encoding="utf-8")


def test_a_placeholder_secret_is_refused_in_this_configuration():
    with pytest.raises(SettingsError, match="SESSION_SECRET"):
        _loaded(SESSION_SECRET="change-me-" + "x" * 40)


def test_an_unresolved_key_vault_reference_is_refused():
    main = _main(AZD_ENVIRONMENT)
    with pytest.raises(SettingsError, match="did not resolve"):
        load_settings(environ=_app_settings(main))


def test_the_redirect_uris_the_runbook_registers_are_the_apps():
    """The runbook registers <SERVICE_API_BASE_URL>/api/auth/callback; the app builds them from PUBLIC_BASE_URL."""
    main = _main(AZD_ENVIRONMENT)
    output = main.eval(template("main")["outputs"]["SERVICE_API_BASE_URL"]["value"])
    assert output == _loaded().public_base_url


def test_a_custom_domain_becomes_the_public_base_url():
    settings = _loaded({**AZD_ENVIRONMENT, "PUBLIC_BASE_URL": "https://licensing.contoso.example"})
    assert settings.public_base_url == "https://licensing.contoso.example"


def test_the_sender_switches_to_the_custom_domain_only_once_verified():
    environment = {**AZD_ENVIRONMENT, "CUSTOM_EMAIL_DOMAIN": "mail.contoso.example"}
    assert _loaded(environment).mail_sender.endswith(".azurecomm.net")
    verified = _loaded({**environment, "CUSTOM_EMAIL_DOMAIN_VERIFIED": "true"})
    assert verified.mail_sender == "DoNotReply@mail.contoso.example"


def test_settings_come_from_the_app_settings_only(tmp_path: Path):
    """load_settings(environ=...) ignores local.settings.json: nothing from a developer's checkout leaks in."""
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"APP_ENVIRONMENT": "local"}}))
    main = _main(AZD_ENVIRONMENT)
    vault_uri = main.lookup("keyVault")["outputs"]["uri"]
    settings = _resolve_key_vault_references(_app_settings(main), vault_uri, _sample_secrets("whsec_" + "b" * 30))
    assert load_settings(environ=settings, app_root=tmp_path).environment == "production"


def test_the_rehearsal_parameter_file_is_what_azd_would_pass():
    """scripts/what_if_parameters.py reads `azd env get-values` output and writes a file `az` accepts."""
    env_text = "".join(f'{name}="{value}"\n' for name, value in AZD_ENVIRONMENT.items())
    result = subprocess.run(
        [sys.executable, str(INFRA.parent / "scripts" / "what_if_parameters.py")],
        input=env_text + 'CUSTOM_EMAIL_DOMAIN_VERIFIED="true"\n', capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)
    assert written["$schema"].endswith("deploymentParameters.json#")
    parameters = {name: spec["value"] for name, spec in written["parameters"].items()}
    assert parameters["environmentName"] == "licensing-prod" and parameters["entraClientId"] == CLIENT_ID
    assert parameters["customEmailDomainVerified"] is True and parameters["principalType"] == "User"
    assert parameters["stripeApiVersion"] == ""
    assert _decorator_problems(parameters) == []
