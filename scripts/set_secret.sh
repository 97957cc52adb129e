#!/bin/sh
# Stores one of the app's secrets in its Key Vault without the value ever being a command-line argument
# (shell history, `ps`): the value is read from standard input, with a prompt that does not echo when that
# is a terminal, or from a file, and handed to the Azure CLI as a file that only you can read.
#
#   scripts/set_secret.sh <secret name>           type or paste the value (Enter ends it)
#   <command> | scripts/set_secret.sh <name>      the command's output, e.g. openssl rand -hex 32
#   scripts/set_secret.sh <secret name> <file>    the file's content as it is (PEM keys)
#
# The vault is $AZURE_KEY_VAULT_NAME (azd env get-values; docs/operations.md loads it). Needs `az login`
# and the Key Vault Secrets Officer role that `azd provision` grants to whoever ran it.
set -eu

# The secrets the app references (infra/functionapp.bicep; infra/hooks/check-secrets.sh checks the same).
SECRETS="session-secret entra-client-secret stripe-secret-key stripe-webhook-secrets lease-signing-keys"

usage() {
  echo "usage: scripts/set_secret.sh <secret name> [<file>]   secret names: $SECRETS" >&2
  exit 2
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
name=$1
case " $SECRETS " in
  *" $name "*) ;;
  *) echo "set_secret: unknown secret name '$name'" >&2; usage ;;
esac
vault="${AZURE_KEY_VAULT_NAME:-}"
if [ -z "$vault" ]; then
  echo "set_secret: AZURE_KEY_VAULT_NAME is not set; load the azd values first (docs/operations.md, step 4)." >&2
  exit 1
fi

if [ $# -eq 2 ]; then
  source_file=$2
  [ -s "$source_file" ] || { echo "set_secret: $source_file is missing or empty" >&2; exit 1; }
else
  umask 077
  source_file=$(mktemp)
  trap 'rm -f "$source_file"; if [ -t 0 ]; then stty echo; fi' EXIT
  trap 'exit 1' HUP INT TERM
  if [ -t 0 ]; then
    printf 'Value for %s (not shown; Enter ends it): ' "$name" >&2
    stty -echo
    IFS= read -r value || true
    stty echo
    printf '\n' >&2
  else
    value=$(cat)  # trailing newlines removed, as a pasted value has none
  fi
  [ -n "$value" ] || { echo "set_secret: empty value; nothing stored" >&2; exit 1; }
  printf '%s' "$value" > "$source_file"  # printf is a shell builtin: the value is no process argument
  value=
fi

az keyvault secret set --vault-name "$vault" --name "$name" --file "$source_file" --encoding utf-8 --output none
echo "set_secret: stored a new version of $name in $vault."
