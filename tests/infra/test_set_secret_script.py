"""scripts/set_secret.sh, the runbook's way to store a secret, with a stand-in `az` that records its call.

The runbook must never put a secret on a command line (shell history, the process list): the script reads it
from standard input or a file and passes the Azure CLI a file only the operator can read, deleted after.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.infra.templates import INFRA

SCRIPT = INFRA.parent / "scripts" / "set_secret.sh"
FAKE_AZ = """#!/bin/sh
printf '%s\\n' "$@" > "$AZ_LOG/args"
while [ $# -gt 0 ]; do
  if [ "$1" = "--file" ]; then cp "$2" "$AZ_LOG/content"; ls -l "$2" > "$AZ_LOG/mode"; echo "$2" > "$AZ_LOG/path"; fi
  shift
done
"""


@pytest.fixture
def az(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "az").write_text(FAKE_AZ)
    (bin_dir / "az").chmod(0o755)
    return tmp_path


def _run(az: Path, *args: str, stdin: str = "", vault: str = "kv-test") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{az / 'bin'}:{os.environ['PATH']}", "AZ_LOG": str(az), "AZURE_KEY_VAULT_NAME": vault}
    return subprocess.run(["sh", str(SCRIPT), *args], input=stdin, capture_output=True, text=True, env=env,
                          timeout=30, check=False)


def test_value_from_standard_input_reaches_az_as_a_private_file_only(az: Path):
    secret = "Q8x~" + "s3cr3t-value-" * 3
    result = _run(az, "entra-client-secret", stdin=secret + "\n")
    assert result.returncode == 0, result.stderr
    args = (az / "args").read_text().split("\n")
    assert secret not in "\n".join(args)
    assert args[:7] == ["keyvault", "secret", "set", "--vault-name", "kv-test", "--name", "entra-client-secret"]
    # The trailing newline of a pasted or piped value is not part of the secret.
    assert (az / "content").read_text() == secret
    assert (az / "mode").read_text().startswith("-rw-------")
    assert not Path((az / "path").read_text().strip()).exists(), "the temporary file must be deleted"


def test_a_file_is_stored_as_it_is(az: Path, tmp_path: Path):
    pem = tmp_path / "lease-key.pem"
    pem.write_text("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
    assert _run(az, "lease-signing-keys", str(pem)).returncode == 0
    assert (az / "content").read_text() == pem.read_text()


@pytest.mark.parametrize(
    "args, stdin, vault, message",
    [
        (("sesion-secret",), "x" * 64, "kv-test", "unknown secret name"),
        (("session-secret",), "", "kv-test", "empty value"),
        (("session-secret",), "x" * 64, "", "AZURE_KEY_VAULT_NAME"),
    ],
)
def test_refuses_what_would_store_the_wrong_thing(az: Path, args, stdin, vault, message):
    result = _run(az, *args, stdin=stdin, vault=vault)
    assert result.returncode != 0 and message in result.stderr
    assert not (az / "args").exists()


def test_knows_exactly_the_secrets_the_app_references():
    hook = (INFRA / "hooks" / "check-secrets.sh").read_text(encoding="utf-8")
    script = SCRIPT.read_text(encoding="utf-8")
    checked = re.search(r"for name in ([^;]+);", hook)
    known = re.search(r'^SECRETS="([^"]+)"', script, re.M)
    assert checked and known and known.group(1).split() == checked.group(1).split()
