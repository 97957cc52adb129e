"""Static checks of infra/*.bicep: they parse, and the security settings the operations issue requires are there.

No Azure access and no Bicep CLI: the templates are read with pycep-parser (tests/infra/templates.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pycep import BicepParser

from adapters import table_storage as app_storage
from tests.infra.templates import INFRA, bicep_files, key, one, resources, template, variable, walk_strings

# Azure built-in role name -> id, vendored with its source (Microsoft's built-in roles page), so a wrong id in
# rbac.bicep is caught against Microsoft's list rather than against a copy of the template.
BUILT_IN_ROLES: dict[str, str] = json.loads((Path(__file__).with_name("azure_builtin_roles.json")).read_text())["roles"]
# The actions Microsoft documents for sending e-mail through Communication Services with an Entra identity
# ("Use a custom role to limit permissions", Communication Services SMTP authentication how-to).
EMAIL_SEND_ACTIONS = [
    "Microsoft.Communication/CommunicationServices/Read",
    "Microsoft.Communication/CommunicationServices/Write",
    "Microsoft.Communication/EmailServices/write",
]


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_every_bicep_file_parses(path):
    assert BicepParser().parse(file_path=path)


def test_main_is_subscription_scoped_and_uses_only_local_modules():
    main = template("main")
    assert main["globals"]["scope"]["value"] == "subscription"
    for name, module in main["modules"].items():
        assert module["type"] == "local", f"module {name} must be a local file, not a registry module"
        assert (INFRA / module["detail"]["path"]).is_file()


def test_module_calls_match_module_parameters():
    """What `bicep build` would catch: unknown or missing module parameters."""
    for name, module in template("main")["modules"].items():
        declared = template(module["detail"]["path"].removesuffix(".bicep"))["parameters"]
        passed = set(module["config"]["params"])
        assert passed <= set(declared), f"{name}: unknown parameters {passed - set(declared)}"
        required = {p for p, spec in declared.items() if spec["default"] is None}
        assert required <= passed, f"{name}: missing parameters {required - passed}"


# --- storage -------------------------------------------------------------------------------------


def test_storage_account_is_identity_only_https_tls12():
    props = one("storage", "Microsoft.Storage/storageAccounts")["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["defaultToOAuthAuthentication"] is True
    assert props["allowBlobPublicAccess"] is False
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["minimumTlsVersion"] == "TLS1_2"


def test_no_storage_keys_or_connection_strings_anywhere():
    for path in bicep_files():
        text = path.read_text(encoding="utf-8")
        assert "listKeys" not in text, path.name
        assert "AccountKey=" not in text, path.name
        assert "DefaultEndpointsProtocol" not in text, path.name


def test_tables_and_queues_match_the_code():
    assert variable("main", "tableNames") == list(app_storage.TABLES)
    expected_queues = [name for queue in app_storage.QUEUES for name in (queue, f"{queue}-poison")]
    assert variable("main", "queueNames") == expected_queues


# --- function app --------------------------------------------------------------------------------


def test_flex_consumption_plan_on_linux():
    plan = one("functionapp", "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True


def test_function_app_is_https_only_tls12_ftp_off_python311():
    site = one("functionapp", "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"
    props = site["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["scmMinTlsVersion"] == "1.2"
    # FTP is off through basicPublishingCredentialsPolicies (next test): Flex Consumption rejects ftpsState.
    assert "ftpsState" not in props["siteConfig"]
    assert props["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}


def test_basic_auth_publishing_is_off_for_ftp_and_scm():
    policies = resources("functionapp", "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {p["name"]: p["properties"]["allow"] for p in policies.values()} == {"ftp": False, "scm": False}


def test_function_app_uses_the_user_assigned_identity_everywhere():
    site = one("functionapp", "Microsoft.Web/sites")
    assert site["identity"]["type"] == "UserAssigned"
    assert [key(k) for k in site["identity"]["userAssignedIdentities"]] == ["${identityId}"]
    props = site["properties"]
    assert props["keyVaultReferenceIdentity"] == "identityId"
    auth = props["functionAppConfig"]["deployment"]["storage"]["authentication"]
    assert auth == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}


def test_host_storage_uses_managed_identity():
    settings = variable("functionapp", "platformSettings")
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    for service in ("blob", "queue", "table"):
        assert settings[f"AzureWebJobsStorage__{service}ServiceUri"] == f"{service}Endpoint"
    assert "AzureWebJobsStorage" not in settings
    assert "AzureWebJobsStorage" not in variable("main", "operatorSettings")


def test_app_settings_are_the_operator_and_platform_settings():
    app_settings = one("functionapp", "Microsoft.Web/sites")["properties"]["siteConfig"]["appSettings"]
    source = app_settings["loop_type"]["detail"]["array_name"]["function"]["parameters"]["arg_1"]["function"]
    assert source["type"] == "union"
    # platformSettings last: an operator value can never override what the template derives.
    assert list(source["parameters"].values()) == ["operatorSettings", "platformSettings"]


def test_secrets_are_key_vault_references():
    settings = variable("functionapp", "platformSettings")
    secret_names = {
        "SESSION_SECRET": "session-secret",
        "ENTRA_CLIENT_SECRET": "entra-client-secret",
        "STRIPE_SECRET_KEY": "stripe-secret-key",
        "STRIPE_WEBHOOK_SECRETS": "stripe-webhook-secrets",
        "LEASE_SIGNING_KEYS": "lease-signing-keys",
    }
    for setting, secret in secret_names.items():
        # Versionless with a trailing slash: the latest version is used after a rotation.
        assert settings[setting] == f"@Microsoft.KeyVault(SecretUri=${{keyVaultUri}}secrets/{secret}/)"
    hook = (INFRA / "hooks" / "check-secrets.sh").read_text(encoding="utf-8")
    assert re.search(r"for name in ([^;]+);", hook).group(1).split() == list(secret_names.values())


def test_application_insights_ingests_with_the_identity():
    settings = variable("functionapp", "platformSettings")
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"
    component = one("monitoring", "Microsoft.Insights/components")
    assert component["properties"]["DisableLocalAuth"] is True


# --- Key Vault -----------------------------------------------------------------------------------


def test_key_vault_uses_rbac_and_cannot_be_purged():
    props = one("keyvault", "Microsoft.KeyVault/vaults")["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True


def test_template_never_writes_secret_values():
    for path in bicep_files():
        parsed = BicepParser().parse(file_path=path)
        types = {r["type"].lower() for r in parsed.get("resources", {}).values()}
        assert "microsoft.keyvault/vaults/secrets" not in types, path.name
        secure = [p for p, spec in parsed.get("parameters", {}).items()
                  if any(d["type"] == "secure" for d in spec["decorators"])]
        assert not secure, f"{path.name}: secrets go to Key Vault directly, not through parameters: {secure}"


# --- role assignments ----------------------------------------------------------------------------


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _built_in_role_id(symbol: str) -> str | None:
    """Id of the built-in role that a key of rbac.bicep's `roles` (camelCase of the role name) stands for."""
    by_name = {_normalise(name): role_id for name, role_id in BUILT_IN_ROLES.items()}
    return by_name.get(_normalise(symbol))


def _assignments() -> list[tuple[str, str, str]]:
    """(role, scope symbol, principal) of every role assignment in rbac.bicep.

    role: the key in `roles` for a built-in role, or the symbol of a role definition declared in rbac.bicep.
    """
    out = []
    for assignment in resources("rbac", "Microsoft.Authorization/roleAssignments").values():
        role = assignment["properties"]["roleDefinitionId"]
        if isinstance(role, dict) and "function" in role:  # subscriptionResourceId('...roleDefinitions', roles.x)
            accessor = role["function"]["parameters"]["resource_name_1"]
            role_name = accessor["operator"]["operands"]["operand_2"]
        else:  # <custom role symbol>.id
            operands = role["operator"]["operands"]
            assert operands["operand_2"] == "id", role
            role_name = operands["operand_1"]
        out.append((role_name, assignment["scope"], assignment["properties"]["principalId"]))
    return out


def test_built_in_role_ids_are_microsofts():
    for symbol, role_id in variable("rbac", "roles").items():
        expected = _built_in_role_id(symbol)
        assert expected, f"{symbol}: not in tests/infra/azure_builtin_roles.json; add it from its source"
        assert role_id == expected, f"{symbol}: {role_id} is not the built-in role's id {expected}"


@pytest.mark.parametrize(
    "role, scope",
    [
        ("storageBlobDataOwner", "storage"),
        ("storageQueueDataContributor", "storage"),
        ("storageTableDataContributor", "storage"),
        ("keyVaultSecretsUser", "vault"),
        ("monitoringMetricsPublisher", "appInsights"),
        ("emailSenderRole", "communicationService"),
    ],
)
def test_app_identity_has_role(role, scope):
    assert (role, scope, "appPrincipalId") in _assignments()


def test_app_identity_has_no_other_roles():
    app_roles = {(role, scope) for role, scope, principal in _assignments() if principal == "appPrincipalId"}
    assert len(app_roles) == 6, app_roles


def test_app_sends_mail_with_a_role_that_cannot_touch_the_access_keys():
    """Communication and Email Service Owner could list and regenerate the ACS keys; the app gets only sending."""
    definitions = resources("rbac", "Microsoft.Authorization/roleDefinitions")
    role = definitions["emailSenderRole"]["properties"]
    assert role["type"] == "CustomRole"
    (scope,) = role["assignableScopes"]  # resourceGroup().id: assignable in this resource group only
    assert scope["operator"]["operands"]["operand_1"]["function"]["type"] == "resource_group"
    assert scope["operator"]["operands"]["operand_2"] == "id"
    (permissions,) = role["permissions"]
    actions = permissions["actions"]
    assert actions == EMAIL_SEND_ACTIONS
    assert not any("*" in action or "ListKeys" in action or "RegenerateKey" in action for action in actions)
    assert not permissions.get("dataActions")
    assert "communicationAndEmailServiceOwner" not in variable("rbac", "roles")


def test_communication_services_accepts_entra_tokens_only():
    (symbol, acs), = resources("communication", "Microsoft.Communication/communicationServices").items()
    assert acs["properties"]["disableLocalAuth"] is True
    # disableLocalAuth exists from API version 2025-05-01 (azure-rest-api-specs, Microsoft.Communication
    # stable/2025-05-01/CommunicationServices.json); older versions drop the property silently.
    api_version = template("communication")["resources"][symbol]["api_version"]
    assert api_version >= "2025-05-01", api_version


def test_rbac_module_gets_the_identity_principal():
    accessor = template("main")["modules"]["rbac"]["config"]["params"]["appPrincipalId"]["operator"]["operands"]
    assert accessor["operand_1"] == "identity"
    assert accessor["operand_2"]["operator"]["operands"] == {"operand_1": "outputs", "operand_2": "principalId"}


# --- alerts --------------------------------------------------------------------------------------


def _queries() -> dict[str, str]:
    rules = resources("alerts", "Microsoft.Insights/scheduledQueryRules")
    return {name: rule["properties"]["criteria"]["allOf"][0]["query"] for name, rule in rules.items()}


def test_alert_on_poison_queue_messages():
    queries = _queries()
    assert "-poison" in queries["poisonMoved"] and "Moving message to queue" in queries["poisonMoved"]
    assert "poison_queue_depth" in queries["poisonNotEmpty"]


def test_alert_on_repeated_webhook_failures():
    query = _queries()["webhookFailing"]
    assert '"stripe_webhook"' in query and '"apply_stripe_event"' in query


def test_alerts_watch_application_insights():
    for rule in resources("alerts", "Microsoft.Insights/scheduledQueryRules").values():
        assert rule["properties"]["scopes"] == ["applicationInsightsId"]
        assert rule["properties"]["enabled"] is True


# --- azd -----------------------------------------------------------------------------------------


def test_azure_yaml_names_one_python_function_service():
    text = (INFRA.parent / "azure.yaml").read_text(encoding="utf-8")
    assert re.search(r"^services:\n  api:\n    project: \.\n    language: python\n    host: function$", text, re.M)
    # azd finds the app to deploy to by this tag.
    tags = one("functionapp", "Microsoft.Web/sites")["tags"]["function"]["parameters"]
    assert {key(k): v for k, v in tags["arg_2"].items()} == {"azd-service-name": "api"}


def test_parameters_file_covers_main_parameters():
    declared = template("main")["parameters"]
    given = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert set(given) <= set(declared), set(given) - set(declared)
    required = {p for p, spec in declared.items() if spec["default"] is None}
    assert required <= set(given), required - set(given)


def test_no_secret_values_in_templates():
    pattern = re.compile(r"(sk|rk)_(live|test)_|whsec_[A-Za-z0-9]|-----BEGIN")
    for path in [*bicep_files(), INFRA / "main.parameters.json"]:
        for text in walk_strings(json.loads(path.read_text()) if path.suffix == ".json" else template(path.stem)):
            assert not pattern.search(text), f"{path.name}: {text}"
