"""Command line: `serve`, `token`, `ca-bundle`.

  python -m standins.identity_provider serve --port 7443 --cert-dir .certs [--users-file users.json]
  python -m standins.identity_provider token --user alice@contoso.example --audience api://<client-id>
  python -m standins.identity_provider ca-bundle --cert-dir .certs
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from . import client
from .cert import write_ca_bundle
from .directory import Directory
from .launcher import READY_PREFIX
from .server import build_server

DEFAULT_PORT = 7443
DEFAULT_CERT_DIR = ".certs"


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s identity-provider %(message)s",
        stream=sys.stderr,
    )
    directory = Directory.from_file(args.users_file) if args.users_file else Directory.default()
    server = build_server(args.port, args.cert_dir, directory, bind=args.bind)
    url = server.provider.base_url

    def stop(signum, frame) -> None:
        # shutdown() waits for serve_forever() to return, so it must not run on the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(READY_PREFIX + url, flush=True)  # launcher.py waits for this exact line
    bundle = Path(args.cert_dir).resolve() / "ca-bundle.pem"
    print(f"authority: {url}/organizations (MSAL: instance_discovery=False)", flush=True)
    print(f"callers need REQUESTS_CA_BUNDLE={bundle}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)  # prompt shutdown on SIGTERM
    finally:
        server.server_close()
    print("identity provider stopped", flush=True)
    return 0


def _default_verify(cert_dir: str):
    # The CLI trusts the provider's own certificate unless REQUESTS_CA_BUNDLE is already set for it.
    cert = Path(cert_dir) / "cert.pem"
    return str(cert) if cert.exists() else None


def _token(args: argparse.Namespace) -> int:
    claims = {}
    for item in args.claim or []:
        name, _, raw = item.partition("=")
        try:
            claims[name] = json.loads(raw)
        except json.JSONDecodeError:
            claims[name] = raw  # plain strings need no JSON quoting on a command line
    response = client.issue_token_response(
        args.url, args.user, tenant=args.tenant, audience=args.audience, scope=args.scope,
        ver=args.ver, lifetime=args.lifetime, client_id=args.client_id, claims=claims or None,
        verify=_default_verify(args.cert_dir),
    )
    if args.json:
        print(json.dumps(response, indent=2))
    else:
        print(response["access_token"])
    return 0


def _ca_bundle(args: argparse.Namespace) -> int:
    print(write_ca_bundle(args.cert_dir))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins.identity_provider",
                                     description="Local Entra ID stand-in (development and tests only).")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTPS identity provider")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    serve.add_argument("--bind", default="127.0.0.1", help="listen address (default: loopback only)")
    serve.add_argument("--cert-dir", default=DEFAULT_CERT_DIR)
    serve.add_argument("--users-file", help="JSON directory replacing the built-in tenants and users")
    serve.add_argument("--quiet", action="store_true", help="log warnings only, not every request")
    serve.set_defaults(run=_serve)

    token = commands.add_parser("token", help="print an access token from the running provider")
    token.add_argument("--url", default=os.environ.get("IDENTITY_PROVIDER_URL", f"https://localhost:{DEFAULT_PORT}"))
    token.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="to trust the provider's certificate")
    token.add_argument("--user", required=True, help="sign-in name, oid, or unambiguous e-mail")
    token.add_argument("--tenant", help="tenant name or GUID, to disambiguate")
    token.add_argument("--audience", help="aud claim, e.g. api://<client-id>; default: from --scope")
    token.add_argument("--scope", help="scope names (with --audience) or full scopes; default access_as_user")
    token.add_argument("--ver", type=int, choices=(1, 2), default=2)
    token.add_argument("--lifetime", type=int, help="seconds (default 3600)")
    token.add_argument("--client-id", help="azp/appid claim")
    token.add_argument("--claim", action="append", metavar="NAME=JSON",
                       help="override a claim (repeatable); NAME=null removes it")
    token.add_argument("--json", action="store_true", help="print the token with its claims")
    token.set_defaults(run=_token)

    bundle = commands.add_parser("ca-bundle", help="write <cert-dir>/ca-bundle.pem and print its path")
    bundle.add_argument("--cert-dir", default=DEFAULT_CERT_DIR)
    bundle.set_defaults(run=_ca_bundle)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
