"""``python -m standins.stripe_emulator [serve|bootstrap] ...``"""

import argparse
import signal
import sys
import threading

from .bootstrap import client_for, ensure_catalog
from .emulator import Emulator, Settings
from .server import serve


def _parser():
    parser = argparse.ArgumentParser(prog="python -m standins.stripe_emulator")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("serve", help="run the emulator (default)")
    _serve_arguments(run)
    boot = commands.add_parser("bootstrap", help="create product and tiered price if missing")
    boot.add_argument("--api-key", default="sk_test_emulator")
    boot.add_argument("--api-base", default="http://127.0.0.1:12111")
    return parser


def _serve_arguments(parser):
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111, help="0 picks a free port")
    parser.add_argument("--webhook-url", action="append", default=[],
                        help="repeatable; each URL gets every event")
    parser.add_argument("--webhook-secret", action="append", default=[],
                        help="whsec_...; one for all URLs, or one per --webhook-url")
    parser.add_argument("--state-file", help="persist state here across restarts")
    parser.add_argument("--legacy-shapes", action="store_true",
                        help="render events/responses as API versions before 2025-03-31")
    parser.add_argument("--api-key", help="accept only this sk_test_ key (default: any)")
    parser.add_argument("--async-payment-delay", type=float, default=10.0,
                        help="seconds until a delayed (SEPA) checkout payment settles")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        argv = ["serve", *argv]
    args = _parser().parse_args(argv)
    if args.command == "bootstrap":
        print(ensure_catalog(client_for(args.api_key, args.api_base)))
        return 0

    secrets = args.webhook_secret or [""]
    endpoints = [(url, secrets[i] if i < len(secrets) else secrets[0])
                 for i, url in enumerate(args.webhook_url)]
    settings = Settings(endpoints=endpoints, legacy_shapes=args.legacy_shapes,
                        api_key=args.api_key,
                        async_payment_delay_seconds=args.async_payment_delay)
    emulator = Emulator(settings, state_file=args.state_file)
    server = serve(emulator, args.host, args.port)
    host, port = server.server_address[:2]
    settings.public_url = f"http://{host}:{port}"
    stop = threading.Event()
    # serve_forever runs on its own thread, so the handlers only set a flag: calling
    # server.shutdown() from the signal handler would deadlock on the main thread.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"Stripe emulator listening on {settings.public_url}", flush=True)
    while not stop.wait(0.1):
        pass
    server.shutdown()
    server.server_close()
    emulator.shutdown()
    print("Stripe emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
