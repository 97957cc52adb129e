"""Import the app's `function_app.py` and describe its functions, as the Python worker does.

The worker imports `function_app` from the app directory (on sys.path) and indexes `app` through
`get_functions()`; each function's `get_function_json()` is what the host sees as function.json.
"""
from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

TRIGGER_TYPES = ("httpTrigger", "queueTrigger", "timerTrigger")
_APP_SETTING = re.compile(r"%([^%]+)%")


class AppLoadError(RuntimeError):
    pass


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger_type: str
    trigger: dict[str, Any]  # the trigger binding from function.json, app settings resolved
    user_function: Callable[..., Any]
    is_async: bool
    wants_context: bool  # the worker passes func.Context to a parameter named `context`
    other_bindings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def trigger_param(self) -> str:
        return self.trigger["name"]


def resolve_app_settings(value: str, environ=os.environ) -> str:
    """Binding values may name app settings as %Name% (e.g. a queue name); the host resolves them."""
    def lookup(match: re.Match) -> str:
        if match.group(1) not in environ:
            raise AppLoadError(f"binding refers to app setting %{match.group(1)}%, which is not set")
        return environ[match.group(1)]
    return _APP_SETTING.sub(lookup, value)


def _describe(function) -> FunctionSpec:
    name = function.get_function_name()
    bindings = json.loads(function.get_function_json())["bindings"]
    triggers = [b for b in bindings if b["type"] in TRIGGER_TYPES]
    if len(triggers) != 1:
        kinds = [b["type"] for b in bindings if b["type"].endswith("Trigger")]
        raise AppLoadError(
            f"function {name!r}: the local host supports HTTP, queue and timer triggers, found {kinds}"
        )
    trigger = {k: resolve_app_settings(v) if isinstance(v, str) else v for k, v in triggers[0].items()}
    others = [b for b in bindings if b is not triggers[0]]
    # Output/input bindings other than the HTTP response would silently do nothing here; refuse them
    # so nobody believes a binding works locally when it does not.
    unsupported = [b for b in others if not (b["type"] == "http" and b.get("direction", "").upper() == "OUT")]
    if unsupported:
        raise AppLoadError(
            f"function {name!r}: binding types {[b['type'] for b in unsupported]} are not supported by "
            "the local host; use the storage SDK in the function instead"
        )
    user_function = function.get_user_function()
    parameters = inspect.signature(user_function).parameters
    extra = [p for p in parameters if p not in (trigger["name"], "context")]
    if extra:
        raise AppLoadError(f"function {name!r}: parameters {extra} have no binding")
    return FunctionSpec(
        name=name,
        trigger_type=trigger["type"],
        trigger=trigger,
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        wants_context="context" in parameters,
        other_bindings=others,
    )


def load_functions(app_dir: Path, script_file: str = "function_app.py") -> list[FunctionSpec]:
    """Import the app (once per process) and return its functions."""
    app_dir = app_dir.resolve()
    module_name = Path(script_file).stem
    if not (app_dir / script_file).exists():
        raise AppLoadError(f"{app_dir / script_file} does not exist")
    loaded = sys.modules.get(module_name)
    if loaded is not None and (loaded.__file__ is None or Path(loaded.__file__).resolve().parent != app_dir):
        # Apps share module names (function_app, their blueprints); a second app cannot be
        # imported into the same interpreter. Use local_host.launch() for a separate process.
        raise AppLoadError(f"another {module_name!r} ({loaded.__file__}) is already imported in this process")
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module = importlib.import_module(module_name)
    app = getattr(module, "app", None)
    if not isinstance(app, func.FunctionApp):
        raise AppLoadError(f"{script_file} must define `app = func.FunctionApp(...)`")
    return [_describe(function) for function in app.get_functions()]
