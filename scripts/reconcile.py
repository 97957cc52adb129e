"""Compare subscriptions with Stripe and repair drift, by hand (the daily timer does the same).

    .venv/bin/python scripts/reconcile.py                  # every subscription (and missed checkouts)
    .venv/bin/python scripts/reconcile.py --subscription sub_123

Reads the same settings as the app (environment, or local.settings.json in the checkout).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services import bootstrap  # noqa: E402
from services.billing_events import Billing, reconcile  # noqa: E402
from services.settings import SettingsError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscription", help="only this subscription (its Stripe id, sub_...)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        billing = Billing(storage=bootstrap.storage(), stripe=bootstrap.stripe(), settings=bootstrap.settings())
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    repaired = reconcile(billing, args.subscription)
    print(f"repaired {len(repaired)} subscription(s){': ' + ', '.join(repaired) if repaired else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
