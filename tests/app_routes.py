"""The real app's HTTP functions as the Functions host sees them, for tests that check every route.

Read in a child process: importing the app installs process-wide logging, and the Functions library
lets `get_functions()` run only once per app.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SUBSCRIPTION_PREFIXES = ("subscriptions/", "v1/subscriptions/")

_PROBE = r"""
import json, function_app
rows = []
for fn in function_app.app.get_functions():
    if not fn.is_http_function():
        continue
    trigger = fn.get_trigger()
    user_function = fn.get_user_function()
    rows.append({
        "name": fn.get_function_name(),
        "route": trigger.route,
        "methods": sorted(str(getattr(m, "value", m)) for m in (trigger.methods or [])),
        "permission": getattr(user_function, "required_permission", None),
        "gate": getattr(user_function, "gate", None),
        "csrf": getattr(user_function, "checks_csrf", None),
    })
print(json.dumps(rows))
"""


@functools.lru_cache(maxsize=1)
def http_functions() -> tuple[dict[str, Any], ...]:
    """Name, route, methods and what the gate declared (permission, gate kind, CSRF) per function."""
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return tuple(json.loads(out))


def is_subscription_route(route: str) -> bool:
    return route.strip("/").startswith(SUBSCRIPTION_PREFIXES)
