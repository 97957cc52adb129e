"""Create the SecureMailMerge product and tiered seat price in Stripe, if missing.

    python scripts/stripe_setup.py                                           # real Stripe; asks for the key
    python scripts/stripe_setup.py --api-key sk_test_x --api-base http://127.0.0.1:12111

Without --api-key the secret key is asked for and not shown, so a live key stays out of the shell history.

Prints the price id. The logic lives in standins/stripe_emulator/bootstrap.py and uses only
the stripe SDK, so the emulator and a real account are set up by the same code.
"""

import argparse
import getpass
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from standins.stripe_emulator.bootstrap import client_for, ensure_catalog  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-key", help="sk_test_... or sk_live_...; omitted: asked for, not shown")
    parser.add_argument("--api-base", help="emulator URL; omit for api.stripe.com")
    args = parser.parse_args()
    api_key = args.api_key or getpass.getpass("Stripe secret key (sk_live_... or sk_test_...; not shown): ")
    print(ensure_catalog(client_for(api_key, args.api_base)))


if __name__ == "__main__":
    main()
