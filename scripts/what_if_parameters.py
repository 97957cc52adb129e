"""infra/main.parameters.json with the azd environment's values filled in, for `az deployment sub what-if`.

azd fills `${NAME}` and `${NAME=default}` in infra/main.parameters.json from its environment when it
provisions; the Azure CLI does not, so the deployment rehearsal (docs/operations.md, "First deployment
checklist") fills them in here, the same way: an unset NAME becomes empty (or its default), and a value of a
bool or int parameter of infra/main.bicep becomes that JSON type. The file holds no secrets: the templates
never receive any.

    { azd env get-values; echo "AZURE_PRINCIPAL_ID=$(az ad signed-in-user show --query id -o tsv)"; } \\
        | .venv/bin/python scripts/what_if_parameters.py > what-if.parameters.json
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

INFRA = Path(__file__).resolve().parent.parent / "infra"
_REFERENCE = re.compile(r"\$\{(\w+)(?:=([^}]*))?\}")


def read_env(text: str) -> dict[str, str]:
    """`azd env get-values` output (NAME="value" lines) as a dict."""
    values = {}
    for line in text.splitlines():
        match = re.fullmatch(r'\s*(\w+)=(?:"((?:[^"\\]|\\.)*)"|(.*?))\s*', line)
        if match:
            quoted, bare = match.group(2), match.group(3)
            values[match.group(1)] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
    return values


def parameter_types() -> dict[str, str]:
    """Parameter name -> declared type in infra/main.bicep."""
    from pycep import BicepParser  # a development dependency (requirements-dev.txt)

    parsed = BicepParser().parse(file_path=INFRA / "main.bicep")
    return {name: str(spec["type"]) for name, spec in parsed["parameters"].items()}


def fill(parameters: Mapping[str, Any], environment: Mapping[str, str], types: Mapping[str, str]) -> dict[str, Any]:
    """The `parameters` section of main.parameters.json with every azd reference replaced, typed."""
    out: dict[str, Any] = {}
    for name, spec in parameters.items():
        match = _REFERENCE.fullmatch(spec["value"])
        if match is None:
            raise ValueError(f"{name}: {spec['value']!r} is not an azd variable reference")
        variable, default = match.groups()
        value = environment.get(variable, default if default is not None else "")
        if types.get(name) == "bool":
            out[name] = {"value": value.strip().lower() == "true"}
        elif types.get(name) == "int":
            out[name] = {"value": int(value)}
        else:
            out[name] = {"value": value}
    return out


def main() -> int:
    template = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    environment = read_env(sys.stdin.read())
    missing = [name for name in ("AZURE_ENV_NAME", "AZURE_LOCATION") if not environment.get(name)]
    if missing:
        print(f"what_if_parameters: {', '.join(missing)} missing from the input (azd env get-values)", file=sys.stderr)
        return 1
    template["parameters"] = fill(template["parameters"], environment, parameter_types())
    json.dump(template, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
