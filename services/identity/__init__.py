"""Who is calling: Entra ID access tokens turned into a Principal (tid, oid, sign-in names)."""

from services.identity.access_token import (
    AccessTokenValidator,
    InvalidToken,
    Principal,
    id_token_validator_for,
    validator_for,
)

__all__ = ["AccessTokenValidator", "InvalidToken", "Principal", "id_token_validator_for", "validator_for"]
