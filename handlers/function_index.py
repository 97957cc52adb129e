"""The app's functions as the Functions host sees them, without importing every handler module.

A cold start imports `function_app`, and importing every handler module (with the billing, e-invoice,
merge, delegation... services behind them) would cost the license check several times what it needs
itself (issue 14, `benchmarks/cold_start.py`). So `function_app` registers the license check's own
functions as they are and every other function as a stub with the same name, bindings and signature that
imports its module on its first call. The host and the worker see the same functions either way.

What the stubs are made from is `function_index.json` beside this module, written by
`scripts/function_index.py` (azure.yaml runs it before packaging). It is used only while it
matches the code: it records a hash of every Python file of the app, and on any difference
`function_app` imports every handler module as before (correct, only slower; the log says so).
tests/unit/test_cold_start.py checks that stubs and real functions look the same to the host.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import os
import pkgutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import azure.functions as func

log = logging.getLogger(__name__)

APP_ROOT = Path(__file__).resolve().parent.parent
# FUNCTION_INDEX_FILE (a build and test knob, not an app setting) points at another copy.
INDEX_FILE = Path(os.environ.get("FUNCTION_INDEX_FILE") or Path(__file__).with_name("function_index.json"))
# The code the functions' bindings come from (constants such as queue names live in adapters/).
SOURCE_FOLDERS = ("handlers", "services", "adapters")
# What the gate records on a function (handlers/gate.py), read by tests/app_routes.py.
GATE_ATTRIBUTES = ("required_permission", "gate", "checks_csrf")
_ANNOTATIONS: dict[str, Any] = {"HttpRequest": func.HttpRequest, "HttpResponse": func.HttpResponse,
                                "TimerRequest": func.TimerRequest, "QueueMessage": func.QueueMessage,
                                "Context": func.Context, "None": None, "NoneType": None}


def source_hash(root: Path = APP_ROOT) -> str:
    """A hash of function_app.py and every .py file under SOURCE_FOLDERS (names and contents)."""
    digest = hashlib.sha256()
    files = [root / "function_app.py"] + sorted(p for folder in SOURCE_FOLDERS for p in (root / folder).rglob("*.py"))
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# --- writing the index (from the real functions) -------------------------------------------------------


def describe(functions: Iterable[Any]) -> list[dict[str, Any]]:
    """What a stub needs of each function (`app.get_functions()` of the app with every module imported)."""
    entries = []
    for function in functions:
        user = function.get_user_function()
        bindings = json.loads(function.get_function_json())["bindings"]
        trigger = next(b for b in bindings if b["type"].endswith("Trigger"))
        hints = {name: getattr(value, "__name__", str(value)) for name, value in _hints(user).items()}
        entries.append({
            "name": function.get_function_name(),
            "module": user.__module__,
            "attribute": user.__name__,
            "trigger": trigger,
            "parameters": [[name, hints.get(name, "None")] for name in inspect.signature(user).parameters],
            "returns": hints.get("return", "None"),
            "attributes": {a: getattr(user, a) for a in GATE_ATTRIBUTES if hasattr(user, a)},
        })
    return entries


def _hints(user: Callable[..., Any]) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(user, globalns={**getattr(user, "__globals__", {}), "func": func})


def write(app: func.FunctionApp, path: Path = INDEX_FILE) -> None:
    path.write_text(json.dumps({"source": source_hash(), "functions": describe(app.get_functions())}, indent=1,
                               sort_keys=True) + "\n", encoding="utf-8")


# --- reading it (function_app) -------------------------------------------------------------------------


def current(path: Path = INDEX_FILE) -> list[dict[str, Any]] | None:
    """The index's functions if it matches the code, else None."""
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if index.get("source") != source_hash():
        log.warning("handlers/function_index.json does not match the code: every handler module is imported "
                    "(run scripts/function_index.py to restore the faster cold start)")
        return None
    functions: list[dict[str, Any]] = index["functions"]
    return functions


def stub_blueprint(entries: Iterable[dict[str, Any]]) -> func.Blueprint:
    """A blueprint with a stub for each entry: same name, bindings and signature; the first call imports
    the function's module, later calls go straight to it."""
    bp = func.Blueprint()  # type: ignore[no-untyped-call]  # see handlers/blueprint.py
    for entry in entries:
        builder: Any = _stub(entry)
        trigger = entry["trigger"]
        kind = trigger["type"]
        if kind == "httpTrigger":
            builder = bp.route(route=trigger.get("route"), trigger_arg_name=trigger["name"],
                               methods=trigger.get("methods"), auth_level=trigger.get("authLevel"))(builder)
        elif kind == "timerTrigger":
            builder = bp.timer_trigger(arg_name=trigger["name"], schedule=trigger["schedule"],
                                       run_on_startup=trigger.get("runOnStartup"))(builder)
        elif kind == "queueTrigger":
            builder = bp.queue_trigger(arg_name=trigger["name"], queue_name=trigger["queueName"],
                                       connection=trigger["connection"])(builder)
        else:  # a new kind of trigger: tests/unit/test_cold_start.py says so
            raise ValueError(f"function {entry['name']}: no stub for a {kind}")
        if entry["name"] != entry["attribute"]:
            bp.function_name(entry["name"])(builder)
    return bp


def _stub(entry: dict[str, Any]) -> Callable[..., Any]:
    module, attribute = entry["module"], entry["attribute"]
    target: list[Callable[..., Any]] = []
    lock = threading.Lock()

    def call(*args: Any, **kwargs: Any) -> Any:
        if not target:
            with lock:
                if not target:
                    target.append(getattr(importlib.import_module(module), attribute))
        return target[0](*args, **kwargs)

    parameters = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ANNOTATIONS[kind])
                  for name, kind in entry["parameters"]]
    returns = _ANNOTATIONS[entry["returns"]]
    call.__name__ = call.__qualname__ = attribute
    call.__module__ = module
    call.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]
    call.__annotations__ = {**{p.name: p.annotation for p in parameters}, "return": returns}
    for name, value in entry["attributes"].items():
        setattr(call, name, value)
    return call


def import_all() -> None:
    """Import every handler module (what their import registers, e.g. their OpenAPI descriptions),
    whether stubs stand for them or they were imported at start: which of the two holds must not depend
    on whether the index still matches the files now."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)], prefix=f"{__package__}."):
        importlib.import_module(module.name)
