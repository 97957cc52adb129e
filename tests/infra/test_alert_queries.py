"""Every log-alert query in the templates, run through Microsoft's Kusto language service offline.

Azure Monitor checks a scheduled query rule only when it is created: a measure column that is not numeric,
or a dimension that is not a string, fails `azd provision` (or, for a query that compiles but measures the
wrong column, the alert never fires). The language service (npm `@kusto/language-service-next`, driven by
tests/infra/kusto_analyze.js) types each query's result against the Application Insights schema
(tests/infra/appinsights_schema.json), so those mistakes show here instead.

The alerts read trace and request telemetry; adaptive sampling in host.json may drop such items, and an
alert that counts poison-queue lines must see every one: the last test ties the two together.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.infra.templates import INFRA, bicep_files, resources

ROOT = INFRA.parent
ANALYZER = Path(__file__).with_name("kusto_analyze.js")
LANGUAGE_SERVICE = ROOT / "node_modules" / "@kusto" / "language-service-next"
SCHEMA = json.loads(Path(__file__).with_name("appinsights_schema.json").read_text(encoding="utf-8"))["tables"]
RUNBOOK = ROOT / "docs" / "operations.md"

NUMERIC = {"int", "long", "real", "decimal"}
# Application Insights table -> the telemetry type host.json's samplingSettings.excludedTypes names.
# customMetrics has none: metrics are pre-aggregated and never sampled.
SAMPLED_TYPE = {"traces": "Trace", "requests": "Request", "exceptions": "Exception", "customMetrics": None}


def _criteria() -> dict[str, dict[str, Any]]:
    """'<template>.<rule>[i]' -> criterion of every scheduled query rule in every template."""
    out = {}
    for path in bicep_files():
        for symbol, rule in resources(path.stem, "Microsoft.Insights/scheduledQueryRules").items():
            for index, criterion in enumerate(rule["properties"]["criteria"]["allOf"]):
                out[f"{path.stem}.{symbol}[{index}]"] = criterion
    return out


def _runbook_queries() -> dict[str, str]:
    """The example queries in docs/operations.md (```kusto blocks; queries separated by blank lines)."""
    out = {}
    blocks = re.findall(r"```kusto\n(.*?)```", RUNBOOK.read_text(encoding="utf-8"), re.S)
    for block_number, block in enumerate(blocks):
        for query_number, query in enumerate(re.split(r"\n\s*\n", block)):
            if query.strip():
                out[f"operations.md block {block_number} query {query_number}"] = query
    return out


CRITERIA = _criteria()


@cache
def _analysis() -> dict[str, dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not LANGUAGE_SERVICE.is_dir():
        pytest.skip("node or node_modules/@kusto/language-service-next is missing: run `make setup` (make test does)")
    queries = {name: criterion["query"] for name, criterion in CRITERIA.items()} | _runbook_queries()
    result = subprocess.run(
        [node, str(ANALYZER)],
        input=json.dumps({"tables": SCHEMA, "queries": queries}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, dict[str, Any]] = json.loads(result.stdout)
    return answer


def _columns(name: str) -> dict[str, str]:
    return {column["name"]: column["type"] for column in _analysis()[name]["columns"]}


def _errors(name: str) -> list[str]:
    return [d["message"] for d in _analysis()[name]["diagnostics"] if d["severity"] == "Error"]


def test_the_templates_have_alert_queries():
    assert len(CRITERIA) >= 3, CRITERIA.keys()


@pytest.mark.parametrize("name", CRITERIA)
def test_alert_query_compiles_against_the_application_insights_schema(name):
    assert _errors(name) == []


@pytest.mark.parametrize("name", CRITERIA)
def test_alert_measure_column_is_numeric(name):
    criterion = CRITERIA[name]
    measure = criterion.get("metricMeasureColumn")
    if measure is None:
        # Without a measure column Azure Monitor counts result rows, which only `Count` does.
        assert criterion["timeAggregation"] == "Count", name
        return
    assert criterion["timeAggregation"] in ("Total", "Average", "Minimum", "Maximum"), name
    columns = _columns(name)
    assert measure in columns, f"{name}: {measure!r} is not a result column: {columns}"
    assert columns[measure] in NUMERIC, f"{name}: measure column {measure!r} is {columns[measure]}, not numeric"


@pytest.mark.parametrize("name", CRITERIA)
def test_alert_dimensions_are_string_columns(name):
    columns = _columns(name)
    for dimension in CRITERIA[name].get("dimensions", []):
        assert dimension["name"] in columns, f"{name}: dimension {dimension['name']!r} is not a result column"
        assert columns[dimension["name"]] == "string", f"{name}: dimension {dimension['name']!r} is not a string"


@pytest.mark.parametrize("name", _runbook_queries())
def test_runbook_query_compiles(name):
    assert _errors(name) == []


def test_telemetry_the_alerts_read_is_never_sampled_away():
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    excluded = {kind.strip() for kind in sampling.get("excludedTypes", "").split(";") if kind.strip()}
    for name in CRITERIA:
        tables = _analysis()[name]["tables"]
        assert tables, f"{name}: reads no known table"
        for table in tables:
            kind = SAMPLED_TYPE[table]
            if sampling.get("isEnabled", True) and kind is not None:
                assert kind in excluded, f"{name} reads {table}: add {kind} to host.json samplingSettings.excludedTypes"
