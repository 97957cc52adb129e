"""The license check's cold start: importing the app must not load the heavy SDKs."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_function_app_does_not_import_heavy_sdks():
    probe = "import sys, function_app; print(' '.join(sorted(m for m in sys.modules)))"
    modules = set(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split())
    for heavy in ("stripe", "msal", "azure.communication.email", "azure.identity", "jinja2"):
        assert heavy not in modules, f"{heavy} is imported at cold start"


def test_function_app_registers_every_area():
    probe = "import function_app; print(' '.join(f.get_function_name() for f in function_app.app.get_functions()))"
    names = set(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.split())
    assert {"health", "openapi", "send_email", "stripe_webhook", "apply_stripe_event", "reconcile_subscriptions",
            "signin", "auth_callback", "dashboard"} <= names
