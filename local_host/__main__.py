"""`python -m local_host [--app-dir DIR] [--port 7071]`: run a FunctionApp like `func start`."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from .app_loader import AppLoadError
from .host import LocalHost
from .invocation_log import configure_console_logging

logger = logging.getLogger("local_host")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_host", description=__doc__)
    parser.add_argument("--app-dir", type=Path, default=Path.cwd(), help="folder with function_app.py (default: cwd)")
    parser.add_argument("--port", type=int, default=7071, help="HTTP port; 0 picks a free one (default 7071)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--verbose", action="store_true", help="also log each HTTP request")
    args = parser.parse_args(argv)

    configure_console_logging(logging.DEBUG if args.verbose else logging.INFO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    host = LocalHost(args.app_dir, port=args.port, bind=args.bind)
    try:
        host.start()
    except Exception as error:  # import errors in the app, bad host.json, port in use, ...
        logger.error("Cannot start the local host: %s", error, exc_info=not isinstance(error, AppLoadError))
        return 1
    while not stop.wait(1.0):
        pass
    logger.info("Shutdown requested")
    host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
