"""Write handlers/function_index.json: the functions `function_app` registers as stubs (handlers/function_index.py).

    .venv/bin/python scripts/function_index.py

Run it after changing a function's route, trigger, name or gate; azure.yaml runs it before every package
(a stale index is never used, it only makes the cold start slower). FUNCTION_INDEX_FILE writes elsewhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import function_app  # noqa: E402
from handlers import function_index  # noqa: E402

if __name__ == "__main__":
    function_index.write(function_app.eager_app())
    print(f"wrote {function_index.INDEX_FILE}")
