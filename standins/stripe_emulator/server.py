"""HTTP plumbing: Stripe's request conventions around the /v1 handlers, plus control
endpoints and the hosted pages.

Conventions emulated: Bearer (or Basic) secret-key auth answering 401 in Stripe's error
shape, form-encoded bodies, ``Stripe-Version`` echoed (and pre-2025-03-31 versions get the
legacy shapes), ``Idempotency-Key`` replay, ``Request-Id`` on every response, and webhook
delivery only after the response has been written.
"""

import base64
import copy
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from . import api, checkout_page, control
from .errors import StripeError
from .events import CURRENT_API_VERSION, LEGACY_API_VERSION
from .forms import decode
from .render import is_legacy_version
from .store import Store


@dataclass
class ApiRequest:
    method: str
    path: str
    params: dict
    version: str
    legacy: bool


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, emulator):
        super().__init__(address, Handler)
        self.emulator = emulator


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stripe-emulator"
    # Headers and body go out in separate writes; with keep-alive clients (the SDK's
    # requests session) Nagle + delayed ACK would add ~40 ms to every call.
    disable_nagle_algorithm = True
    server: EmulatorServer

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass  # tests start many requests; keep stderr for real problems

    # -- dispatch ----------------------------------------------------------------------

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            if url.path.startswith("/v1/"):
                self._api(method, url, body)
            elif url.path.startswith("/_emulator/"):
                status, payload = control.handle(self.server.emulator, method, url.path,
                                                 url.query, body, self.base_url)
                self._send_json(status, payload)
            else:
                response = checkout_page.handle(self.server.emulator, method, url.path,
                                                body, self.base_url)
                self._send(*response)
        except StripeError as error:
            self._send_json(error.status, error.body())
        except (BrokenPipeError, ConnectionResetError):
            pass

    @property
    def base_url(self):
        # Links (checkout url, hosted invoice) follow the host the caller used to reach us.
        host = self.headers.get("Host") or self.server.emulator.settings.public_url[7:]
        return f"http://{host}"

    # -- /v1 ---------------------------------------------------------------------------

    def _api(self, method, url, body):
        emulator = self.server.emulator
        request_id = Store.new_id("req_", 14)
        api_key = self._api_key()
        settings = emulator.settings
        default_version = LEGACY_API_VERSION if settings.legacy_shapes else CURRENT_API_VERSION
        version = self.headers.get("Stripe-Version") or default_version
        headers = {"Request-Id": request_id, "Stripe-Version": version}
        if api_key is None:
            return self._send_json(401, StripeError(
                401, "You did not provide an API key. You need to provide your API key in the "
                     "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                     "YOUR_SECRET_KEY').").body(), headers)
        if not api_key.startswith(("sk_test_", "rk_test_")) or (
                settings.api_key and api_key != settings.api_key):
            masked = api_key[:8] + "*" * max(0, len(api_key) - 12) + api_key[-4:]
            return self._send_json(401, StripeError(
                401, f"Invalid API Key provided: {masked}").body(), headers)

        query = url.query
        form = body.decode("utf-8") if method == "POST" else ""
        params = decode("&".join(part for part in (query, form) if part))
        request = ApiRequest(method, url.path, params, version, is_legacy_version(version))
        handler, args = api.match(method, url.path)
        if handler is None:
            error = StripeError(404, f"Unrecognized request URL ({method}: {url.path}). Please "
                                     f"see https://stripe.com/docs or we can help at "
                                     f"https://support.stripe.com/.")
            return self._send_json(404, error.body(), headers)

        idempotency_key = self.headers.get("Idempotency-Key") if method == "POST" else None
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        fingerprint = hashlib.sha256(
            json.dumps([method, url.path, params], sort_keys=True).encode()).hexdigest()
        store_key = f"{api_key}:{idempotency_key}"

        with emulator.store.lock:
            saved = emulator.store.idempotency.get(store_key) if idempotency_key else None
            if saved is not None:
                if saved["fingerprint"] != fingerprint:
                    error = StripeError(
                        400, "Keys for idempotent requests can only be used with the same "
                             "parameters they were first used with. Try using a key other "
                             f"than '{idempotency_key}' if you meant to execute a different "
                             "request.", type="idempotency_error")
                    return self._send_json(400, error.body(), headers)
                headers["Idempotent-Replayed"] = "true"
                headers["Original-Request"] = saved["request_id"]
                return self._send_json(saved["status"], saved["body"], headers)

            # Atomic requests: a failure half-way through leaves the account unchanged.
            checkpoint = (copy.deepcopy(emulator.store.objects), emulator.store.sequence) \
                if method != "GET" else None
            with emulator.action(self.base_url, request_id, idempotency_key,
                                 deliver=False) as ctx:
                try:
                    status, payload = handler(ctx, request, **args)
                except StripeError as error:
                    if checkpoint:
                        emulator.store.objects, emulator.store.sequence = checkpoint
                    ctx.events.events.clear()
                    status, payload = error.status, error.body()
                if idempotency_key:
                    _remember(emulator.store, store_key, {
                        "fingerprint": fingerprint, "status": status, "body": payload,
                        "request_id": request_id, "at": time.time()})
            events = ctx.events.events
        with emulator.dispatcher.announced():
            self._send_json(status, payload, headers)
            emulator.dispatcher.submit(events)

    def _api_key(self):
        auth = self.headers.get("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        if scheme.lower() == "basic" and value:
            # curl -u sk_test_...: sends the key as the Basic user name.
            try:
                user = base64.b64decode(value).decode().partition(":")[0]
            except ValueError:
                return None
            return user or None
        return None

    # -- responses ---------------------------------------------------------------------

    def _send_json(self, status, payload, headers=None):
        body = json.dumps(payload, indent=2).encode()
        self._send(status, body, "application/json", headers)

    def _send(self, status, body, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


IDEMPOTENCY_TTL_SECONDS = 24 * 3600  # Stripe forgets keys after 24 hours


def _remember(store, key, result):
    """Store an idempotent result; the SDK sends a fresh key with every POST, so expire old ones."""
    store.idempotency[key] = result
    if len(store.idempotency) > 1000:
        cutoff = time.time() - IDEMPOTENCY_TTL_SECONDS
        for old in [k for k, v in store.idempotency.items() if v.get("at", 0) < cutoff]:
            del store.idempotency[old]


def serve(emulator, host="127.0.0.1", port=12111):
    """Start serving on a background thread; returns the server (``.server_address``)."""
    server = EmulatorServer((host, port), emulator)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="stripe-emulator", daemon=True)
    thread.start()
    return server
