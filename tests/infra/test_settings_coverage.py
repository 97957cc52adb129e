"""Every setting the code reads is provided in Azure: by the template, or documented as local only.

The settings object is the source of truth (services.settings.Settings, aliases = app-setting names); the
documentation is infra/SETTINGS.md, whose table this test reads.
"""

from __future__ import annotations

import json
import re

import pytest

from services.settings import setting_fields
from tests.infra.templates import INFRA, variable

SETTINGS_DOC = INFRA / "SETTINGS.md"
ALIASES = [setting.alias for setting in setting_fields()]


def _doc_rows() -> dict[str, dict[str, str]]:
    """App setting -> {set_by, source, notes} from the table in infra/SETTINGS.md."""
    rows = {}
    for line in SETTINGS_DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1] in ("template", "parameter", "Key Vault", "local only"):
            rows[cells[0]] = {"set_by": cells[1], "source": cells[2], "notes": cells[3]}
    return rows


def _template_settings() -> set[str]:
    return set(variable("main", "operatorSettings")) | set(variable("functionapp", "platformSettings"))


@pytest.mark.parametrize("alias", ALIASES)
def test_setting_is_set_by_the_template_or_documented_as_local_only(alias):
    row = _doc_rows().get(alias)
    assert row, f"{alias}: add a row to infra/SETTINGS.md"
    if row["set_by"] == "local only":
        assert alias not in _template_settings(), f"{alias}: documented as local only but set by the template"
        assert len(row["notes"]) > 20, f"{alias}: say why it is not set in Azure"
    else:
        assert alias in _template_settings(), f"{alias}: not set by infra/main.bicep or infra/functionapp.bicep"


def test_documented_source_matches_the_template():
    operator = variable("main", "operatorSettings")
    platform = variable("functionapp", "platformSettings")
    for alias, row in _doc_rows().items():
        if row["set_by"] == "parameter":
            assert alias in operator, f"{alias}: documented as a parameter but not in main.bicep operatorSettings"
        elif row["set_by"] == "Key Vault":
            assert platform[alias].endswith(f"secrets/{row['source']}/)"), alias
        elif row["set_by"] == "template":
            assert alias in platform, f"{alias}: documented as set by the template but not in platformSettings"


def test_operator_parameters_use_the_setting_name_as_azd_variable():
    """`azd env set SUPPORT_EMAIL ...` sets SUPPORT_EMAIL: one name for the operator to know."""
    given = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    for alias, param in variable("main", "operatorSettings").items():
        assert param in given, f"{alias}: parameter {param} missing from main.parameters.json"
        assert re.fullmatch(r"\$\{" + re.escape(alias) + r"(=[^}]*)?\}", given[param]["value"]), (alias, given[param])


def test_secrets_of_the_code_are_key_vault_rows():
    secret_aliases = {setting.alias for setting in setting_fields() if setting.secret}
    rows = _doc_rows()
    assert {alias for alias in secret_aliases if rows[alias]["set_by"] != "Key Vault"} == set()


def test_documented_rows_are_real_settings():
    assert set(_doc_rows()) <= set(ALIASES), set(_doc_rows()) - set(ALIASES)
