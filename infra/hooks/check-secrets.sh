#!/bin/sh
# azd predeploy hook: stop before deploying code if a Key Vault secret the app references is missing.
# Without it the app setting would hold the unresolved "@Microsoft.KeyVault(...)" text instead of the
# secret (see docs/operations.md, "First deployment"). Needs the Azure CLI signed in (`az login`).
set -eu

vault="${AZURE_KEY_VAULT_NAME:-}"
if [ -z "$vault" ]; then
  echo "check-secrets: AZURE_KEY_VAULT_NAME is not set; run 'azd provision' first." >&2
  exit 1
fi
if ! command -v az >/dev/null 2>&1; then
  echo "check-secrets: Azure CLI not found; cannot verify the secrets in $vault. Continuing." >&2
  exit 0
fi

missing=""
for name in session-secret entra-client-secret stripe-secret-key stripe-webhook-secrets lease-signing-keys; do
  if ! az keyvault secret show --vault-name "$vault" --name "$name" --query id --output none >/dev/null 2>&1; then
    missing="$missing $name"
  fi
done

if [ -n "$missing" ]; then
  echo "check-secrets: these secrets are missing in Key Vault $vault:$missing" >&2
  echo "This stop is expected on a first 'azd up': the infrastructure is provisioned, the secrets are not." >&2
  echo "Store them (docs/operations.md, First deployment, step 7), make the app read them (step 8)," >&2
  echo "then run 'azd deploy'." >&2
  exit 1
fi
echo "check-secrets: all secrets present in $vault."
