"""Who is calling: Entra ID access tokens turned into a Principal (tid, oid, sign-in names)."""

from services.identity.access_token import AccessTokenValidator, InvalidToken, Principal, validator_for

__all__ = ["AccessTokenValidator", "InvalidToken", "Principal", "validator_for"]
