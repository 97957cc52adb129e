"""local.settings.json → process environment, as `func start` does.

Values already set in the environment win, so a test or a shell can override any setting.
"""
from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from pathlib import Path


def apply_local_settings(app_dir: Path, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Put `Values` into the environment without overriding. Returns the names that were set."""
    if environ is None:
        environ = os.environ
    path = app_dir / "local.settings.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    applied = []
    for name, value in (data.get("Values") or {}).items():
        if name not in environ:
            # App settings are strings on Azure; keep non-strings readable as JSON text.
            environ[name] = value if isinstance(value, str) else json.dumps(value)
            applied.append(name)
    return applied
