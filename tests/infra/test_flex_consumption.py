"""Flex Consumption rejects or ignores many settings of the older plans: the templates set none of them.

The list is Microsoft's "Flex Consumption plan deprecations" table, vendored with its source in
tests/infra/flex_consumption_deprecations.json. Some are hard errors at deployment (for example
`siteConfig.ftpsState`: ARM error 51021 in some regions), the others are silently overwritten or ignored,
which hides what the app really runs with.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.infra.templates import key, one, variable

DEPRECATED = json.loads(Path(__file__).with_name("flex_consumption_deprecations.json").read_text(encoding="utf-8"))


def _site_property_names(node: dict[str, Any], path: str = "properties") -> Iterator[tuple[str, str]]:
    """(path, name) of every property under the site's properties and properties.siteConfig."""
    for raw, value in node.items():
        name = key(raw)
        yield f"{path}.{name}", name
        if name == "siteConfig" and isinstance(value, dict):
            yield from _site_property_names(value, f"{path}.siteConfig")


def test_the_function_app_runs_on_flex_consumption():
    assert one("functionapp", "Microsoft.Web/serverfarms")["sku"]["tier"] == "FlexConsumption"


def test_no_deprecated_app_setting():
    deprecated = {name.upper() for name in DEPRECATED["app_settings"]}
    names = set(variable("main", "operatorSettings")) | set(variable("functionapp", "platformSettings"))
    assert {name for name in names if name.upper() in deprecated} == set()


def test_no_deprecated_site_property():
    deprecated = {path.rsplit(".", 1)[-1].lower() for path in DEPRECATED["site_properties"]}
    site = one("functionapp", "Microsoft.Web/sites")["properties"]
    found = [path for path, name in _site_property_names(site) if name.lower() in deprecated]
    assert found == [], f"not valid on Flex Consumption: {found}"


def test_runtime_and_scale_are_in_function_app_config():
    """Where Flex Consumption takes what FUNCTIONS_WORKER_RUNTIME and the scale-out settings used to say."""
    config = one("functionapp", "Microsoft.Web/sites")["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert set(config["scaleAndConcurrency"]) == {"maximumInstanceCount", "instanceMemoryMB"}
    assert config["deployment"]["storage"]["type"] == "blobContainer"
