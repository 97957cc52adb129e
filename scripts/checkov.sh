#!/usr/bin/env bash
# Runs checkov over infra/ from its own virtual environment (.venv-checkov), created on first use and
# recreated when requirements-checkov.txt changes. checkov's own dependency pins would clash with the
# app's (.venv), hence the separate environment.
#
#   scripts/checkov.sh            create/refresh the environment, then check infra/
#   scripts/checkov.sh --setup    only create/refresh the environment
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-checkov"
requirements="$root/requirements-checkov.txt"
stamp="$venv/.requirements-checkov.txt"

if [[ ! -x "$venv/bin/checkov" ]] || ! cmp -s "$requirements" "$stamp"; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r "$requirements"
  cp "$requirements" "$stamp"
fi

[[ "${1:-}" == "--setup" ]] && exit 0

# --skip-download: no calls to the Bridgecrew/Prisma platform; the built-in checks run offline.
# --compact: failures without code excerpts; skipped checks (with their reasons) still listed.
exec "$venv/bin/checkov" --directory "$root/infra" --framework bicep --skip-download --compact --quiet
