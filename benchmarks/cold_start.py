"""Cold-start cost: importing `function_app` next to importing each runtime package, same run.

Each import runs in a fresh interpreter (that is what a cold start is), several times; the median
is printed. Also lists which heavy SDKs `function_app` pulls in: Stripe, MSAL, the ACS mail client
and azure-identity must not be among them (they load inside the functions that use them).

    .venv/bin/python benchmarks/cold_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# requirements.txt name -> the module it provides
PACKAGES = {
    "azure-functions": "azure.functions",
    "azure-data-tables": "azure.data.tables",
    "azure-storage-queue": "azure.storage.queue",
    "azure-identity": "azure.identity",
    "azure-communication-email": "azure.communication.email",
    "pydantic": "pydantic",
    "stripe": "stripe",
    "msal": "msal",
    "PyJWT": "jwt",
    "cryptography": "cryptography.hazmat.primitives.asymmetric.ec",
    "Jinja2": "jinja2",
    "requests": "requests",
}
HEAVY = ("stripe", "msal", "azure.communication.email", "azure.identity")

_TIMER = "import time, sys; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"


def import_ms(module: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _TIMER.format(module=module)], cwd=ROOT, capture_output=True, text=True, check=True,
        )
        samples.append(float(out.stdout.strip()))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    app = import_ms("function_app", args.runs)
    print(f"{'import function_app':40} {app:8.1f} ms  (median of {args.runs} fresh interpreters)")
    total = 0.0
    for name, module in PACKAGES.items():
        ms = import_ms(module, args.runs)
        total += ms
        print(f"  {'import ' + module + ' (' + name + ')':38} {ms:8.1f} ms")
    print(f"{'every runtime package, one by one':40} {total:8.1f} ms  (sum; shared dependencies counted again)")
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, function_app; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    print(f"heavy SDKs loaded by function_app: {', '.join(loaded) or 'none'}")


if __name__ == "__main__":
    main()
