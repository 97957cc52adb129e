"""Create the SecureMailMerge product and tiered seat price in Stripe, if missing.

    python scripts/stripe_setup.py --api-key sk_test_...                     # real Stripe
    python scripts/stripe_setup.py --api-key sk_test_x --api-base http://127.0.0.1:12111

Prints the price id. The logic lives in standins/stripe_emulator/bootstrap.py and uses only
the stripe SDK, so the emulator and a real account are set up by the same code.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from standins.stripe_emulator.bootstrap import client_for, ensure_catalog  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-key", required=True, help="sk_test_... or sk_live_...")
    parser.add_argument("--api-base", help="emulator URL; omit for api.stripe.com")
    args = parser.parse_args()
    print(ensure_catalog(client_for(args.api_key, args.api_base)))


if __name__ == "__main__":
    main()
