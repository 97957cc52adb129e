"""Dashboard sign-in with MSAL Python: auth-code flow with PKCE, state and nonce.

MSAL checks state and nonce but (since 1.38) not the ID token's issuer, audience or expiry, and with
the multi-tenant `organizations` authority it cannot know which issuer to expect anyway. So the ID
token is validated again here with the same key cache and issuer rules as the add-in's tokens, and
the person is (tid, oid) from those validated claims.
"""

from __future__ import annotations

import logging
from typing import Any

from services.identity.access_token import InvalidToken, id_token_validator_for
from services.settings import Settings
from services.web_session import Person

log = logging.getLogger(__name__)

CALLBACK_PATH = "/api/auth/callback"


class SignInFailed(Exception):
    """The sign-in could not be completed. `code` says why, for the page to explain in its language
    (translations `signin.failed.<code>`): declined, provider, mismatch, code_refused, token_refused,
    personal_account; `detail` is an error code to quote there (Entra's AADSTS code, the token check's
    reason). The message (English) is for logs and safe to show."""

    def __init__(self, message: str, code: str, detail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


def _provider_error(query: dict[str, str]) -> SignInFailed:
    """Entra's error redirect: "access_denied" is the person (or a policy) saying no; anything else is
    quoted by its AADSTS code (or the OAuth error), never by Entra's English description."""
    from services.consent import error_code

    error, description = query.get("error", ""), query.get("error_description", "")
    message = f"{error}: {description}".strip(": ")
    if error == "access_denied":
        return SignInFailed(message, "declined")
    return SignInFailed(message, "provider", error_code(error, description))


def _application(settings: Settings) -> Any:  # msal.ConfidentialClientApplication (msal ships no types)
    import msal  # heavy: only the sign-in routes load it

    return msal.ConfidentialClientApplication(
        settings.entra_client_id,
        client_credential=settings.entra_client_secret,
        authority=settings.entra_authority,
        # MSAL would look up a non-Microsoft authority host at login.microsoftonline.com; for
        # Microsoft's own host it skips that lookup anyway, so this is the same in every environment.
        instance_discovery=False,
    )


def start(settings: Settings, login_hint: str | None = None) -> dict[str, Any]:
    """The MSAL flow to keep in the session; its `auth_uri` is where the browser goes."""
    flow: dict[str, Any] = _application(settings).initiate_auth_code_flow(
        scopes=[],
        redirect_uri=settings.public_base_url + CALLBACK_PATH,
        login_hint=login_hint,
        prompt="select_account",
    )
    return flow


def finish(settings: Settings, flow: dict[str, Any], query: dict[str, str]) -> Person:
    """Redeem the code from the callback's query; SignInFailed with a reason people understand."""
    if query.get("error"):
        raise _provider_error(query)
    try:
        result = _application(settings).acquire_token_by_auth_code_flow(flow, query)
    except ValueError as exc:
        # MSAL raises ValueError for a state mismatch or a replayed/foreign callback.
        log.warning("sign-in callback refused by MSAL: %s", exc)
        raise SignInFailed("the sign-in response did not match this browser's sign-in; please try again",
                           "mismatch") from None
    if "error" in result:
        log.warning("token endpoint refused the code: %s", result.get("error"))
        raise SignInFailed("the sign-in code was refused (it may have been used already); please sign in again",
                           "code_refused")
    try:
        principal = id_token_validator_for(settings).validate(result.get("id_token", ""))
    except InvalidToken as exc:
        log.warning("ID token refused: %s", exc.reason)
        code = "personal_account" if exc.reason == "personal_account" else "token_refused"
        raise SignInFailed(f"the sign-in token was not accepted ({exc.description})", code, exc.reason) from None
    email = principal.email or principal.preferred_username or principal.upn or ""
    return Person(tid=principal.tid, oid=principal.oid, name=principal.name or email, email=email.lower(),
                  sign_in_names=tuple(sorted(principal.sign_in_addresses())))
