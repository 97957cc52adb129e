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
    """The sign-in could not be completed; the message is safe to show."""


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
        raise SignInFailed(f"{query.get('error')}: {query.get('error_description', '')}".strip(": "))
    try:
        result = _application(settings).acquire_token_by_auth_code_flow(flow, query)
    except ValueError as exc:
        # MSAL raises ValueError for a state mismatch or a replayed/foreign callback.
        log.warning("sign-in callback refused by MSAL: %s", exc)
        raise SignInFailed("the sign-in response did not match this browser's sign-in; please try again") from None
    if "error" in result:
        log.warning("token endpoint refused the code: %s", result.get("error"))
        raise SignInFailed("the sign-in code was refused (it may have been used already); please sign in again")
    try:
        principal = id_token_validator_for(settings).validate(result.get("id_token", ""))
    except InvalidToken as exc:
        log.warning("ID token refused: %s", exc.reason)
        raise SignInFailed(f"the sign-in token was not accepted ({exc.description})") from None
    email = principal.email or principal.preferred_username or principal.upn or ""
    return Person(tid=principal.tid, oid=principal.oid, name=principal.name or email, email=email.lower(),
                  sign_in_names=tuple(sorted(principal.sign_in_addresses())))
