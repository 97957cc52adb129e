"""The license check's cold start: importing the app loads what the license check needs, not the rest.

Every function but the license check is registered as a stub from handlers/function_index.json while it
matches the code; the tests write a current index to a temporary file (FUNCTION_INDEX_FILE), so they do
not depend on the committed one being current while people change the code.
"""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from handlers import function_index

ROOT = Path(__file__).resolve().parents[2]
# Loaded where used: never on function_app's import path.
HEAVY = ("pydantic", "stripe", "msal", "azure.communication.email", "azure.identity", "azure.storage.queue", "requests",
         "jinja2", "services.e_invoice", "services.unit_of_work", "services.billing_events", "services.mail",
         "handlers.billing_pages", "handlers.licenses_pages")


@pytest.fixture(scope="module")
def index_env(tmp_path_factory) -> dict[str, str]:
    index = tmp_path_factory.mktemp("index") / "function_index.json"
    env = {**os.environ, "FUNCTION_INDEX_FILE": str(index)}
    subprocess.run([sys.executable, "scripts/function_index.py"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    return env


def run(code: str, env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env=env).stdout


def test_function_app_does_not_import_heavy_sdks_or_other_areas(index_env):
    modules = set(run("import sys, function_app; print(' '.join(sorted(sys.modules)))", index_env).split())
    assert "handlers.license" in modules and "services.license_check" in modules
    for heavy in HEAVY:
        assert heavy not in modules, f"{heavy} is imported at cold start"


def test_function_app_registers_every_area(index_env):
    probe = "import function_app; print(' '.join(f.get_function_name() for f in function_app.app.get_functions()))"
    names = set(run(probe, index_env).split())
    assert {"health", "openapi", "send_email", "stripe_webhook", "apply_stripe_event", "reconcile_subscriptions",
            "signin", "auth_callback", "dashboard", "license_check"} <= names


_COMPARE = r"""
import inspect, json, function_app
def looks(app):
    out = {}
    for f in app.get_functions():
        user = f.get_user_function()
        out[f.get_function_name()] = {
            "json": json.loads(f.get_function_json()),
            "parameters": list(inspect.signature(user).parameters),
            "annotations": sorted(getattr(v, "__name__", str(v))
                                  for v in inspect.get_annotations(user, eval_str=True).values()),
            "gate": [getattr(user, a, None) for a in ("required_permission", "gate", "checks_csrf")],
        }
    return out
print(json.dumps([looks(function_app.app), looks(function_app.eager_app())], default=str))
"""


def test_the_stubs_look_to_the_host_exactly_like_the_functions(index_env):
    stubs, real = json.loads(run(_COMPARE, index_env))
    assert len(real) > 90
    assert stubs == real


def test_a_stale_index_is_not_used(index_env, tmp_path):
    stale = json.loads(Path(index_env["FUNCTION_INDEX_FILE"]).read_text())
    stale["source"] = "an older version of the code"
    (tmp_path / "index.json").write_text(json.dumps(stale))
    env = {**index_env, "FUNCTION_INDEX_FILE": str(tmp_path / "index.json")}
    modules = set(run("import sys, function_app; print(' '.join(sys.modules))", env).split())
    assert "handlers.billing_pages" in modules  # every handler module imported, as without an index


def test_the_api_description_lists_every_area_even_when_the_index_went_stale_after_start(index_env, tmp_path):
    # The worker started with a current index (stubs: the merge routes' module not imported); then the
    # files changed under it. /api/openapi.json must still describe every route.
    moved = tmp_path / "index.json"
    moved.write_text(Path(index_env["FUNCTION_INDEX_FILE"]).read_text())
    probe = (
        "import json, os, pathlib, sys, function_app\n"
        "from handlers import function_index\n"
        "from services import api_spec\n"
        "assert 'handlers.merges_api' not in sys.modules\n"
        "pathlib.Path(os.environ['FUNCTION_INDEX_FILE']).write_text('{}')\n"
        "function_index.import_all()\n"
        "print(json.dumps(sorted(api_spec.document('http://x')['paths'])))"
    )
    paths = json.loads(run(probe, {**index_env, "FUNCTION_INDEX_FILE": str(moved)}))
    assert "/v1/subscriptions/{subscription_id}/merges" in paths


def test_a_stub_imports_its_module_on_the_first_call(monkeypatch):
    calls = []
    module = types.ModuleType("handlers.fake_area")
    module.work = lambda timer: calls.append(timer)  # type: ignore[attr-defined]
    imported = []

    def import_module(name: str) -> types.ModuleType:
        imported.append(name)
        return module

    monkeypatch.setattr("handlers.function_index.importlib.import_module", import_module)
    stub = function_index._stub({"module": "handlers.fake_area", "attribute": "work", "returns": "None",
                                 "parameters": [["timer", "TimerRequest"]], "attributes": {}})
    assert imported == []
    stub("tick")
    stub(timer="tock")
    assert calls == ["tick", "tock"] and imported == ["handlers.fake_area"]
