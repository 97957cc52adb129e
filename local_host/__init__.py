"""Local stand-ins for the Azure Functions host and Azure Storage, for development and tests.

- `python -m local_host` runs the FunctionApp in a folder like `func start` (see host.py).
- `launch()` starts that as a subprocess and returns a handle with `.url`, `.pid`, `.stop()`.
- `LocalHost` runs it in-process; `build_http_request`/`response_parts` are the HTTP translation.
- `local_host.azurite` starts the pinned Azurite storage emulator.

Nothing here is deployed: on Azure the same function_app.py runs under the real host.
"""
from .launcher import LaunchedHost, launch

__all__ = ["LaunchedHost", "launch", "LocalHost", "build_http_request", "response_parts"]


def __getattr__(name: str):
    # Lazy, so `python -m local_host.azurite` and launch() do not import azure.functions.
    if name == "LocalHost":
        from .host import LocalHost
        return LocalHost
    if name in ("build_http_request", "response_parts"):
        from . import http_translation
        return getattr(http_translation, name)
    raise AttributeError(name)
