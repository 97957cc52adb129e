"""Reads the Bicep templates under infra/ with pycep-parser, for the infra tests.

pycep returns plain dicts; interpolated strings stay as their source text (`'https://${name}'`) and
quoted object keys keep their quotes, which `key()` removes.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, cast

from pycep import BicepParser

INFRA = Path(__file__).resolve().parents[2] / "infra"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def template(name: str) -> dict[str, Any]:
    """The parsed template `infra/<name>.bicep`."""
    # Typed by pycep as its BicepJson TypedDict (required keys, per-section shapes); read here as the plain
    # JSON-like dict it is, by whichever section a helper asks for.
    return cast(dict[str, Any], BicepParser().parse(file_path=INFRA / f"{name}.bicep"))


def key(raw: str) -> str:
    return raw.strip("'")


def resources(name: str, type_: str) -> dict[str, dict[str, Any]]:
    """Symbolic name -> body of every resource of `type_` in the template (loops and conditions unwrapped)."""
    out = {}
    for symbol, resource in template(name)["resources"].items():
        if resource["type"].lower() == type_.lower():
            out[symbol] = body(resource)
    return out


def body(resource: dict[str, Any]) -> dict[str, Any]:
    config = resource["config"]
    # `= if (cond) {...}` and `= [for ...: {...}]` wrap the body one level deeper.
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def one(name: str, type_: str) -> dict[str, Any]:
    found = resources(name, type_)
    assert len(found) == 1, f"expected one {type_} in {name}.bicep, found {list(found)}"
    return next(iter(found.values()))


def variable(name: str, var: str) -> Any:
    return template(name)["variables"][var]["value"]


def walk_strings(node: Any) -> Iterator[str]:
    """Every string anywhere in a parsed template, keys included."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from walk_strings(v)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)
    elif isinstance(node, str):
        yield node
