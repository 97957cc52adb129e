import json

import pytest

from services.settings import SettingsError, load_settings
from tests.factories import local_values, production_values


def test_local_values_load_and_split_lists():
    settings = load_settings(local_values(STRIPE_WEBHOOK_SECRETS="whsec_old, whsec_new"))
    assert settings.is_local
    assert settings.stripe_webhook_secrets == ["whsec_old", "whsec_new"]
    assert settings.uses_localhost_url


def test_production_values_load():
    settings = load_settings(production_values())
    assert not settings.is_local and not settings.uses_localhost_url


def test_every_missing_setting_is_named_in_one_error():
    with pytest.raises(SettingsError) as info:
        load_settings({"APP_ENVIRONMENT": "local"})
    message = str(info.value)
    for name in ("PUBLIC_BASE_URL", "SUPPORT_EMAIL", "SESSION_SECRET", "ENTRA_CLIENT_ID", "STRIPE_SECRET_KEY"):
        assert f"{name}: missing" in message


def test_invalid_values_are_explained():
    with pytest.raises(SettingsError) as info:
        load_settings(local_values(PUBLIC_BASE_URL="ftp://x/y", GRACE_DAYS="-1", TOKEN_CLOCK_SKEW_SECONDS="5"))
    message = str(info.value)
    assert "PUBLIC_BASE_URL: must be an absolute http(s) URL" in message
    assert "GRACE_DAYS" in message and "TOKEN_CLOCK_SKEW_SECONDS" in message


@pytest.mark.parametrize("name",
                         ["SESSION_SECRET", "ENTRA_CLIENT_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRETS"])
def test_placeholder_secrets_are_refused_outside_local_development(name):
    placeholder = "local-dev-only-0123456789abcdef0123456789abcdef"
    with pytest.raises(SettingsError) as info:
        load_settings(production_values(**{name: placeholder}))
    assert f"{name}: still holds a placeholder" in str(info.value)
    # ...and the secret's value never appears in the error.
    assert placeholder not in str(info.value)
    load_settings(local_values(**{name: placeholder}))


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"ENTRA_AUTHORITY": "https://localhost:5443/organizations"}, "ENTRA_AUTHORITY"),
        ({"STRIPE_API_BASE": "http://localhost:12111"}, "STRIPE_API_BASE"),
        ({"PUBLIC_BASE_URL": "http://licensing.example"}, "PUBLIC_BASE_URL"),
        ({"ACS_ENDPOINT": "None"}, "ACS_ENDPOINT"),
        ({"LEASE_SIGNING_KEYS": "None"}, "LEASE_SIGNING_KEYS"),
        ({"AzureWebJobsStorage": "None"}, "AzureWebJobsStorage"),
    ],
)
def test_production_refuses_local_stand_ins(override, expected):
    with pytest.raises(SettingsError) as info:
        load_settings(production_values(**override))
    assert expected in str(info.value)


def test_managed_identity_storage_settings_are_enough():
    settings = load_settings(
        production_values(
            AzureWebJobsStorage="None",
            AzureWebJobsStorage__tableServiceUri="https://acct.table.core.windows.net",
            AzureWebJobsStorage__queueServiceUri="https://acct.queue.core.windows.net",
            AzureWebJobsStorage__clientId="00000000-0000-0000-0000-000000000001",
        )
    )
    assert settings.storage_connection_string is None


def test_local_settings_json_is_read_and_environment_wins(tmp_path, monkeypatch):
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": local_values(SUPPORT_EMAIL="file@x.example")}))
    for name in local_values():
        monkeypatch.delenv(name, raising=False)
    assert load_settings(app_root=tmp_path).support_email == "file@x.example"
    monkeypatch.setenv("SUPPORT_EMAIL", "env@x.example")
    assert load_settings(app_root=tmp_path).support_email == "env@x.example"


def test_the_sample_settings_file_is_valid_and_local():
    from services.settings import APP_ROOT

    values = json.loads((APP_ROOT / "local.settings.sample.json").read_text())["Values"]
    assert load_settings(values).is_local


def test_unresolved_key_vault_reference_is_refused():
    reference = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/session-secret/)"
    with pytest.raises(SettingsError) as info:
        load_settings(production_values(SESSION_SECRET=reference))
    assert "SESSION_SECRET: the Key Vault reference did not resolve" in str(info.value)


@pytest.mark.parametrize("text, expected", [("true", True), ("False", False), ("1", True), ("0", False),
                                            ("yes", True), ("off", False), (" TRUE ", True)])
def test_flags_read_the_usual_spellings(text, expected):
    assert load_settings(local_values(ALLOW_PERSONAL_ACCOUNTS=text)).allow_personal_accounts is expected


@pytest.mark.parametrize("name, text, says", [
    ("ALLOW_PERSONAL_ACCOUNTS", "maybe", "must be true or false"),
    ("MAX_QUANTITY", "ten", "must be a whole number"),
    ("MAX_QUANTITY", "10001", "must be at most 10000"),
    ("LEASE_TTL_HOURS", "0", "must be greater than 0"),
    ("STORAGE_HOT_PATH_BUDGET_SECONDS", "-0.5", "must be greater than 0"),
    ("APP_ENVIRONMENT", "staging", "must be 'local' or 'production'"),
    ("DEFAULT_LANGUAGE", "fr", "must be 'en' or 'de'"),
    ("INVOICE_DAYS_UNTIL_DUE", "20", "must be 14 or 30 (days)"),
    ("SELLER_COUNTRY", "Germany", "must match"),
    ("SELLER_EMAIL", "billing", "must be an e-mail address"),
    ("SESSION_SECRET", "short", "must be at least 32 characters long"),
])
def test_each_bad_value_is_named_with_what_it_must_be(name, text, says):
    with pytest.raises(SettingsError) as info:
        load_settings(local_values(**{name: text}))
    assert f"  {name}: {says}" in str(info.value)


def test_values_are_typed_and_defaults_apply():
    settings = load_settings(local_values(MAX_QUANTITY="250", STORAGE_HOT_PATH_BUDGET_SECONDS="1.5",
                                          ADDIN_ORIGINS="https://a.example, https://b.example,",
                                          INVOICE_DAYS_UNTIL_DUE="14"))
    assert settings.max_quantity == 250 and settings.storage_hot_path_budget_seconds == 1.5
    assert settings.addin_origins == ["https://a.example", "https://b.example"]
    assert settings.invoice_days_until_due == 14
    assert settings.grace_days == 14 and settings.seller_country == "DE" and settings.stripe_automatic_tax is True
    assert load_settings(local_values()).addin_origins == []


def test_secrets_never_show_in_the_settings_repr():
    values = local_values()
    text = repr(load_settings(values))
    for name in ("SESSION_SECRET", "ENTRA_CLIENT_SECRET", "STRIPE_SECRET_KEY"):
        assert values[name] not in text
    assert "public_base_url=" in text
