"""The HTTPS server: Entra-shaped endpoints under /{tenant}/..., plus /_admin/... helpers for tests.

`{tenant}` is a tenant GUID, a tenant's short name, or `organizations` / `common` (every tenant), as with
Entra. Issuers always carry the tenant GUID, so a validator that templates `{tenantid}` works unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from . import pages
from .cert import ensure_certificate, write_ca_bundle
from .directory import MULTI_TENANT_SEGMENTS, Directory, DirectoryError, Tenant, User
from .grants import ConsentStore, GrantError, GrantStore
from .keys import KeyRing
from .tokens import DEFAULT_LIFETIME, RequestedScopes, ScopeError, TokenIssuer

log = logging.getLogger("standins.identity_provider")

# A client id for tokens minted through /_admin/token when the caller names none.
ADMIN_TOKEN_CLIENT_ID = "99999999-9999-4999-8999-999999999999"


class Provider:
    """Everything a request needs; the HTTP layer only parses and renders."""

    def __init__(self, base_url: str, directory: Directory, keys: KeyRing):
        self.base_url = base_url.rstrip("/")
        self.directory = directory
        self.keys = keys
        self.grants = GrantStore()
        self.consents = ConsentStore()
        self.tokens = TokenIssuer(keys, self.base_url)

    def openid_configuration(self, segment: str, tenants: list[Tenant]) -> dict:
        multi = segment.lower() in MULTI_TENANT_SEGMENTS
        # Entra answers for a domain-named tenant with its GUID; for organizations/common the issuer is a
        # template that the relying party fills in with the token's tid.
        path = segment.lower() if multi else tenants[0].id
        issuer_tenant = "{tenantid}" if multi else tenants[0].id
        base = f"{self.base_url}/{path}"
        return {
            "issuer": f"{self.base_url}/{issuer_tenant}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "nbf", "auth_time", "nonce", "name",
                "preferred_username", "email", "oid", "tid", "ver",
            ],
            "request_uri_parameter_supported": False,
            "frontchannel_logout_supported": True,
            "http_logout_supported": True,
            "tenant_region_scope": None,
            "cloud_instance_name": urlsplit(self.base_url).hostname,
        }

    def token_response(self, user: User, client_id: str, scope: str, nonce: str | None,
                       auth_time: int) -> dict:
        scopes = RequestedScopes.parse(scope)
        response = {
            "token_type": "Bearer",
            "scope": scopes.granted,
            "expires_in": DEFAULT_LIFETIME,
            "ext_expires_in": DEFAULT_LIFETIME,
            "access_token": self.tokens.access_token(user, client_id, scopes.resource, scopes.names),
            "client_info": self.tokens.client_info(user),
        }
        if "openid" in scopes.oidc:
            response["id_token"] = self.tokens.id_token(user, client_id, nonce, auth_time)
        if "offline_access" in scopes.oidc:
            response["refresh_token"] = self.grants.issue_refresh_token(user, client_id, scope, auth_time)
        return response

    def admin_token(self, spec: dict) -> dict:
        """Mint an access token directly (no browser): the token CLI and validator tests use this."""
        tenants = None
        if spec.get("tenant"):
            tenant = self.directory.tenant(spec["tenant"])
            if tenant is None:
                raise DirectoryError(f"no tenant {spec['tenant']!r}")
            tenants = [tenant]
        user = self.directory.find_user(spec["user"], tenants)
        scope = spec.get("scope") or "access_as_user"
        audience = spec.get("audience")
        if audience:
            names = tuple(s.rpartition("/")[2] for s in scope.split())
        else:
            parsed = RequestedScopes.parse(scope)
            audience, names = parsed.resource, parsed.names
        claims = self.tokens.access_token_claims(
            user,
            spec.get("client_id") or ADMIN_TOKEN_CLIENT_ID,
            audience,
            names,
            ver=int(spec.get("ver", 2)),
            lifetime=int(spec.get("lifetime", DEFAULT_LIFETIME)),
        )
        for name, value in (spec.get("claims") or {}).items():
            if value is None:
                claims.pop(name, None)  # None removes a claim: tests for "missing tid" etc.
            else:
                claims[name] = value
        token = self.tokens.sign(claims, spec.get("headers"))
        return {"access_token": token, "claims": claims, "kid": self.keys.current.kid,
                "user": user.public()}


# --- HTTP --------------------------------------------------------------------------------------------

_TENANT_ROUTES = [
    (re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$"), "discovery"),
    (re.compile(r"^/([^/]+)/discovery/(?:v2\.0/)?keys$"), "keys"),
    (re.compile(r"^/([^/]+)/oauth2/v2\.0/authorize$"), "authorize"),
    (re.compile(r"^/([^/]+)/oauth2/v2\.0/token$"), "token"),
    (re.compile(r"^/([^/]+)/oauth2/v2\.0/logout$"), "logout"),
    (re.compile(r"^/([^/]+)/v2\.0/adminconsent$"), "adminconsent"),
    (re.compile(r"^/([^/]+)/adminconsent$"), "adminconsent"),
]


def _aadsts_code(description: str) -> list[int]:
    match = re.match(r"AADSTS(\d+)", description)
    return [int(match.group(1))] if match else []


class _Redirectable(Exception):
    """An authorize-time error that goes back to the (already validated) redirect URI."""

    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error, self.description = error, description


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalEntraStandIn/1.0"
    timeout = 30  # a stalled client must not pin a worker thread forever

    server: ProviderServer

    @property
    def provider(self) -> Provider:
        return self.server.provider

    # --- plumbing ------------------------------------------------------------------------------------

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        log.info("%s %s", self.address_string(), format % args)

    def log_request(self, code="-", size="-") -> None:
        # Path only: query strings carry state/nonce/codes, which are noise in a log line.
        path = urlsplit(self.path).path
        log.info("%s %s %s", self.command, path, code)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json; charset=utf-8", headers)

    def _html(self, status: int, body: bytes) -> None:
        self._send(status, body, "text/html; charset=utf-8")

    def _redirect(self, location: str) -> None:
        self._send(HTTPStatus.FOUND, b"", "text/plain", {"Location": location})

    def _oauth_error(self, error: str, description: str, status: int = 400) -> None:
        self._json(status, {
            "error": error,
            "error_description": description,
            "error_codes": _aadsts_code(description),
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        })

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _form(self) -> dict[str, str]:
        return dict(parse_qsl(self._body().decode("utf-8"), keep_blank_values=True))

    def _json_body(self) -> dict:
        raw = self._body()
        return json.loads(raw) if raw else {}

    # --- dispatch ------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        try:
            if url.path.startswith("/_admin/"):
                return self._admin(method, url.path)
            for pattern, name in _TENANT_ROUTES:
                match = pattern.match(url.path)
                if match:
                    return getattr(self, f"_route_{name}")(method, unquote(match.group(1)), query)
            if url.path == "/" and method == "GET":
                return self._html(200, pages.message(
                    "Local identity provider",
                    f"Discovery: {self.provider.base_url}/organizations/v2.0/.well-known/openid-configuration"))
            self._json(404, {"error": "not_found", "error_description": f"no route for {url.path}"})
        except Exception:  # keep serving; a stand-in that dies mid-test hides the real failure
            log.exception("error handling %s %s", method, url.path)
            self._json(500, {"error": "server_error", "error_description": "stand-in failed; see its log"})

    def _tenants_or_404(self, segment: str) -> list[Tenant] | None:
        tenants = self.provider.directory.tenants_for_segment(segment)
        if tenants is None:
            self._oauth_error(
                "invalid_tenant",
                f"AADSTS90002: Tenant '{segment}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
                status=400,
            )
        return tenants

    # --- discovery -----------------------------------------------------------------------------------

    def _route_discovery(self, method: str, segment: str, query: dict) -> None:
        tenants = self._tenants_or_404(segment)
        if tenants is not None:
            self._json(200, self.provider.openid_configuration(segment, tenants))

    def _route_keys(self, method: str, segment: str, query: dict) -> None:
        if self._tenants_or_404(segment) is not None:
            self._json(200, self.provider.keys.jwks())

    # --- authorize -----------------------------------------------------------------------------------

    def _route_authorize(self, method: str, segment: str, query: dict) -> None:
        params = {**query, **(self._form() if method == "POST" else {})}
        tenants = self._tenants_or_404(segment)
        if tenants is None:
            return
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        # Until client and redirect URI are known good, errors are shown, never redirected (open redirect).
        if not client_id:
            return self._html(400, pages.message(
                "Sign-in error", "AADSTS900144: The request body must contain the following parameter: 'client_id'."))
        problem = self._redirect_uri_problem(client_id, redirect_uri)
        if problem:
            return self._html(400, pages.message("Sign-in error", problem))
        mode = params.get("response_mode") or "query"
        state = params.get("state")
        try:
            if mode not in ("query", "fragment", "form_post"):
                raise _Redirectable("invalid_request", f"AADSTS900144: response_mode '{mode}' is not supported.")
            if params.get("response_type") != "code":
                raise _Redirectable("unsupported_response_type",
                                    "AADSTS700054: The stand-in supports response_type=code only.")
            scope = params.get("scope", "")
            RequestedScopes.parse(scope)
            challenge = params.get("code_challenge")
            if challenge and params.get("code_challenge_method", "plain") != "S256":
                raise _Redirectable("invalid_request",
                                    "AADSTS501491: The stand-in accepts code_challenge_method=S256 only.")
            user = self._chosen_user(params, tenants)
            if user is None:
                hinted = self._hinted_user(params.get("login_hint"), tenants)
                carried = {k: v for k, v in params.items() if k not in ("select_user", "auto_select")}
                action = f"{self.provider.base_url}/{segment}/oauth2/v2.0/authorize"
                return self._html(200, pages.account_chooser(tenants, carried, action, client_id, hinted))
        except ScopeError as exc:
            return self._respond_to_client(redirect_uri, mode, {"error": "invalid_scope",
                                                                "error_description": str(exc), "state": state})
        except _Redirectable as exc:
            return self._respond_to_client(redirect_uri, mode, {"error": exc.error,
                                                                "error_description": exc.description, "state": state})
        code = self.provider.grants.issue_code(
            user=user, client_id=client_id, redirect_uri=redirect_uri, scope=scope,
            nonce=params.get("nonce"), code_challenge=challenge,
            code_challenge_method=params.get("code_challenge_method") if challenge else None,
        )
        fields = {"code": code, "state": state, "session_state": str(uuid.uuid4())}
        if params.get("client_info") == "1":
            fields["client_info"] = self.provider.tokens.client_info(user)
        log.info("signed in %s (tid %s) for client %s", user.preferred_username, user.tenant_id, client_id)
        self._respond_to_client(redirect_uri, mode, fields)

    def _redirect_uri_problem(self, client_id: str, redirect_uri: str) -> str | None:
        parts = urlsplit(redirect_uri)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            return ("AADSTS50011: The redirect URI specified in the request does not match the redirect URIs "
                    "configured for the application (it must be an absolute http(s) URL without fragment).")
        client = self.provider.directory.client(client_id)
        if client is not None and client.redirect_uris and redirect_uri not in client.redirect_uris:
            return (f"AADSTS50011: The redirect URI '{redirect_uri}' specified in the request does not match "
                    f"the redirect URIs configured for the application '{client_id}'.")
        return None

    def _chosen_user(self, params: dict, tenants: list[Tenant]) -> User | None:
        """The user picked on the chooser, or chosen without a page (auto_select / prompt=none)."""
        selected = params.get("select_user")
        if selected:
            tid, _, oid = selected.partition(":")
            user = self.provider.directory.user(tid, oid)
            if user is None or user.tenant_id not in {t.id for t in tenants}:
                raise _Redirectable("invalid_request", "AADSTS50020: The selected account is not in this tenant.")
            return user
        automatic = params.get("auto_select") == "1" or params.get("prompt") == "none"
        if not automatic:
            return None
        hinted = self._hinted_user(params.get("login_hint"), tenants)
        if hinted is None:
            # Entra's answer when it cannot sign someone in silently.
            raise _Redirectable("login_required", "AADSTS50058: A silent sign-in request was sent but no user "
                                "matches login_hint in this tenant.")
        return hinted

    def _hinted_user(self, login_hint: str | None, tenants: list[Tenant]) -> User | None:
        if not login_hint:
            return None
        try:
            return self.provider.directory.find_user(login_hint, tenants)
        except DirectoryError:
            return None

    def _respond_to_client(self, redirect_uri: str, mode: str, fields: dict) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        if mode == "form_post":
            return self._html(200, pages.form_post(redirect_uri, fields))
        separator = "#" if mode == "fragment" else ("&" if "?" in redirect_uri else "?")
        self._redirect(redirect_uri + separator + urlencode(fields))

    # --- admin consent -------------------------------------------------------------------------------

    def _route_adminconsent(self, method: str, segment: str, query: dict) -> None:
        params = {**query, **(self._form() if method == "POST" else {})}
        tenants = self._tenants_or_404(segment)
        if tenants is None:
            return
        client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
        if not client_id:
            return self._html(400, pages.message(
                "Consent error", "AADSTS900144: The request must contain the parameter 'client_id'."))
        problem = self._redirect_uri_problem(client_id, redirect_uri)
        if problem:
            return self._html(400, pages.message("Consent error", problem))
        state, scope = params.get("state"), params.get("scope")
        if params.get("decision") == "cancel":
            return self._respond_to_client(redirect_uri, "query", {
                "error": "access_denied", "error_subcode": "cancel",
                "error_description": "AADSTS65004: User declined to consent to access the app.", "state": state,
            })
        try:
            admin = self._chosen_user(params, tenants)
        except _Redirectable as exc:
            return self._respond_to_client(redirect_uri, "query", {
                "error": exc.error, "error_description": exc.description, "state": state})
        if admin is None:
            carried = {k: v for k, v in params.items() if k not in ("select_user", "auto_select", "decision")}
            action = f"{self.provider.base_url}/{segment}/v2.0/adminconsent"
            return self._html(200, pages.admin_consent(tenants, carried, action, client_id, scope or ""))
        if not admin.admin:
            return self._respond_to_client(redirect_uri, "query", {
                "error": "access_denied",
                "error_description": "AADSTS90094: The grant requires admin permission.", "state": state})
        log.info("admin consent by %s for tenant %s, client %s", admin.preferred_username, admin.tenant_id, client_id)
        self.provider.consents.grant(admin.tenant_id, client_id)
        self._respond_to_client(redirect_uri, "query", {
            "admin_consent": "True", "tenant": admin.tenant_id, "state": state, "scope": scope})

    # --- logout --------------------------------------------------------------------------------------

    def _route_logout(self, method: str, segment: str, query: dict) -> None:
        target = query.get("post_logout_redirect_uri")
        if target and urlsplit(target).scheme in ("http", "https"):
            if query.get("state"):
                target += ("&" if "?" in target else "?") + urlencode({"state": query["state"]})
            return self._redirect(target)
        self._html(200, pages.message("Signed out", "You have signed out of the local identity provider."))

    # --- token ---------------------------------------------------------------------------------------

    def _route_token(self, method: str, segment: str, query: dict) -> None:
        if method != "POST":
            return self._oauth_error("invalid_request", "AADSTS900561: The endpoint only accepts POST requests.")
        tenants = self._tenants_or_404(segment)
        if tenants is None:
            return
        form = self._form()
        client_id, error = self._authenticate_client(form)
        if error:
            return self._oauth_error("invalid_client", error, status=401)
        if form.get("grant_type") == "client_credentials":
            return self._client_credentials(segment, tenants, client_id, form)
        grants = self.provider.grants
        try:
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                if not form.get("code"):
                    raise GrantError("invalid_request",
                                     "AADSTS900144: The request body must contain the following parameter: 'code'.")
                grant = grants.redeem_code(form["code"], client_id, form.get("redirect_uri"),
                                           form.get("code_verifier"))
                user, nonce, auth_time = grant.user, grant.nonce, grant.auth_time
                scope = form.get("scope") or grant.scope
            elif grant_type == "refresh_token":
                refresh = grants.redeem_refresh_token(form.get("refresh_token", ""), client_id)
                user, nonce, auth_time = refresh.user, None, refresh.auth_time
                scope = form.get("scope") or refresh.scope
            else:
                raise GrantError("unsupported_grant_type",
                                 f"AADSTS70003: The app requested an unsupported grant type '{grant_type}'.")
            if user.tenant_id not in {t.id for t in tenants}:
                raise GrantError("invalid_grant", "AADSTS50020: The grant was issued for a user of another tenant.")
            self._json(200, self.provider.token_response(user, client_id, scope, nonce, auth_time))
        except GrantError as exc:
            self._oauth_error(exc.error, exc.description)
        except ScopeError as exc:
            self._oauth_error("invalid_scope", str(exc))

    def _client_credentials(self, segment: str, tenants: list[Tenant], client_id: str, form: dict) -> None:
        """An app-only token for the application in one tenant: only once the tenant has consented (the
        service principal exists there), as with Entra. Needs a tenant in the path and a client secret."""
        if segment.lower() in MULTI_TENANT_SEGMENTS:
            return self._oauth_error("invalid_request", "AADSTS50059: No tenant-identifying information found in "
                                     "either the request or implied by any provided credentials.")
        if not form.get("client_secret") and not self.headers.get("Authorization", "").lower().startswith("basic "):
            return self._oauth_error("invalid_client", "AADSTS7000218: The request body must contain the following "
                                     "parameter: 'client_assertion' or 'client_secret'.", status=401)
        scope = form.get("scope", "")
        if not scope.endswith("/.default") or len(scope.split()) != 1:
            return self._oauth_error("invalid_scope", f"AADSTS1002012: The provided value for scope {scope} is not "
                                     "valid. Client credential flows must have a scope value with /.default suffixed "
                                     "to the resource identifier (application ID URI).")
        tenant = tenants[0]
        if not self.provider.consents.granted(tenant.id, client_id):
            return self._oauth_error("unauthorized_client", f"AADSTS700016: Application with identifier "
                                     f"'{client_id}' was not found in the directory '{tenant.name}'. This can happen "
                                     "if the application has not been installed by the administrator of the tenant "
                                     "or consented to by any user in the tenant. You may have sent your "
                                     "authentication request to the wrong tenant.")
        resource = RequestedScopes.parse(scope).resource
        self._json(200, {"token_type": "Bearer", "expires_in": DEFAULT_LIFETIME, "ext_expires_in": DEFAULT_LIFETIME,
                         "access_token": self.provider.tokens.app_token(tenant.id, client_id, resource)})

    def _authenticate_client(self, form: dict) -> tuple[str, str | None]:
        """client_secret_basic or client_secret_post; a registered client's secret must match."""
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        header = self.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                basic_id, _, basic_secret = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return client_id, "AADSTS7000216: Malformed HTTP Basic client credentials."
            basic_id, basic_secret = unquote(basic_id), unquote(basic_secret)
            if client_id and client_id != basic_id:
                return client_id, "AADSTS700016: client_id in the body differs from the HTTP Basic user."
            client_id, secret = basic_id, basic_secret
        if not client_id:
            return client_id, "AADSTS900144: The request body must contain the following parameter: 'client_id'."
        client = self.provider.directory.client(client_id)
        if client is not None and client.client_secret is not None and secret != client.client_secret:
            return client_id, (f"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                               f"in the request is the client secret value for app '{client_id}'.")
        return client_id, None

    # --- test helpers --------------------------------------------------------------------------------

    def _admin(self, method: str, path: str) -> None:
        provider = self.provider
        try:
            if path == "/_admin/health" and method == "GET":
                return self._json(200, {"status": "ok", "kid": provider.keys.current.kid})
            if path == "/_admin/users" and method == "GET":
                return self._json(200, {"users": [u.public() for u in provider.directory.users()]})
            if path == "/_admin/users" and method == "POST":
                spec = self._json_body()
                user = provider.directory.add_user(
                    tenant=spec.get("tenant", ""), name=spec.get("name", ""),
                    preferred_username=spec.get("preferred_username", ""), email=spec.get("email"),
                    oid=spec.get("oid"), admin=bool(spec.get("admin", False)),
                )
                return self._json(201, user.public())
            if path == "/_admin/rotate-key" and method == "POST":
                key = provider.keys.rotate()
                return self._json(200, {"kid": key.kid, "published": [k.kid for k in provider.keys.published()]})
            if path == "/_admin/token" and method == "POST":
                return self._json(200, provider.admin_token(self._json_body()))
            if path == "/_admin/consents" and method == "GET":
                return self._json(200, {"consents": provider.consents.all()})
            if path in ("/_admin/consents", "/_admin/consents/revoke") and method == "POST":
                spec = self._json_body()
                tenant = provider.directory.tenant(str(spec.get("tenant", "")))
                if tenant is None or not spec.get("client_id"):
                    raise DirectoryError("name an existing tenant and a client_id")
                if path.endswith("/revoke"):
                    return self._json(200, {"revoked": provider.consents.revoke(tenant.id, spec["client_id"])})
                provider.consents.grant(tenant.id, spec["client_id"])
                return self._json(201, {"tenant": tenant.id, "client_id": spec["client_id"]})
        except (DirectoryError, KeyError, ValueError, ScopeError) as exc:
            return self._json(400, {"error": "invalid_request", "error_description": str(exc)})
        self._json(404, {"error": "not_found", "error_description": f"no admin route {method} {path}"})


class ProviderServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not delay shutdown

    def __init__(self, address: tuple[str, int], ssl_context: ssl.SSLContext,
                 provider_for: Callable[[int], Provider]):
        """`provider_for(port)` builds the provider once the port is bound (its base URL carries the port)."""
        super().__init__(address, RequestHandler)
        # No handshake in accept(): it would run on the serving thread and one slow client would stall all.
        self.socket = ssl_context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.provider: Provider = provider_for(self.server_address[1])

    def handle_error(self, request, client_address) -> None:
        # Clients that drop the TLS connection (or refuse our certificate) are routine, not tracebacks.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError)):
            log.debug("connection from %s ended: %s", client_address, exc)
            return
        super().handle_error(request, client_address)


def build_server(port: int = 0, cert_dir: str | Path = ".certs", directory: Directory | None = None,
                 bind: str = "127.0.0.1", public_host: str = "localhost") -> ProviderServer:
    """Create (not start) a server; its provider's base URL carries the port actually bound."""
    cert_path, key_path = ensure_certificate(cert_dir)
    write_ca_bundle(cert_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return ProviderServer(
        (bind, port), context,
        lambda bound: Provider(f"https://{public_host}:{bound}", directory or Directory.default(), KeyRing(cert_dir)),
    )


@dataclass
class RunningProvider:
    """Same surface as launcher.LaunchedProvider (url, cert_file, ca_bundle, stop) plus the live objects."""

    url: str
    server: ProviderServer
    thread: threading.Thread
    cert_dir: Path

    @property
    def cert_file(self) -> Path:
        return self.cert_dir / "cert.pem"

    @property
    def ca_bundle(self) -> Path:
        return self.cert_dir / "ca-bundle.pem"

    @property
    def provider(self) -> Provider:
        return self.server.provider

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_in_thread(port: int = 0, cert_dir: str | Path = ".certs",
                    directory: Directory | None = None) -> RunningProvider:
    """Serve from a daemon thread of this process (fast; the caller shares the provider's objects)."""
    server = build_server(port, cert_dir, directory)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="identity-provider", daemon=True)
    thread.start()
    return RunningProvider(server.provider.base_url, server, thread, Path(cert_dir).resolve())
