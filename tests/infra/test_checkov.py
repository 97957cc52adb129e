"""checkov over infra/ with no failed check, from its own virtual environment (scripts/checkov.sh).

`make test` creates .venv-checkov first (scripts/checkov.sh --setup); without it this test is skipped,
so a plain `pytest` in a fresh checkout still runs.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.infra.templates import INFRA, bicep_files

CHECKOV = INFRA.parent / ".venv-checkov" / "bin" / "checkov"


@pytest.mark.slow
def test_checkov_finds_no_failed_check():
    if not CHECKOV.exists():
        pytest.skip(".venv-checkov is missing: run scripts/checkov.sh --setup (make test does)")
    result = subprocess.run(
        [str(CHECKOV), "--directory", str(INFRA), "--framework", "bicep", "--skip-download", "--compact", "--quiet"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout, result.stdout


def test_every_checkov_skip_says_why():
    for path in bicep_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            if "checkov:skip=" in line:
                match = re.search(r"checkov:skip=(CKV2?_AZURE_\d+):\s*(.+)", line)
                assert match and len(match.group(2)) > 20, f"{path.name}: skip without a reason: {line.strip()}"
