"""The one typed settings object.

Read from the process environment (Azure app settings, or `func start` / the local host, which copy
`local.settings.json` `Values` into the environment) and, when running from a checkout, from
`local.settings.json` directly so that scripts and tests see the same values as the host.

Never read at import time: `get_settings()` is called by the code that needs a value, and the result is
cached per process (Azure restarts the worker when app settings change).

A plain frozen dataclass checked by the small parsers below, not a pydantic model: this module is on
the license check's import path, and building a pydantic model there cost the cold start more than
everything else the check imports of its own (issue 14, benchmarks/cold_start.py). Each field names its
app setting (`alias`) and how its text is read (`parse`); every problem is reported in one error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

APP_ROOT = Path(__file__).resolve().parent.parent

# Values a developer copies from the sample file; they must never reach a real deployment.
PLACEHOLDER_MARKERS = ("change-me", "placeholder", "local-dev-only")


class SettingsError(RuntimeError):
    """Raised once, at startup, with every missing or invalid setting named."""


# --- how a setting's text is read: each parser returns the value or raises ValueError("must ...") -------

Parser = Callable[[str], Any]


def _text(*, min_length: int = 0, pattern: str | None = None) -> Parser:
    def parse(value: str) -> str:
        if len(value) < min_length:
            raise ValueError(f"must be at least {min_length} characters long")
        if pattern is not None and re.fullmatch(pattern, value) is None:
            raise ValueError(f"must match {pattern}")
        return value

    return parse


def _one_of(*options: str | int, unit: str = "") -> Parser:
    def parse(value: str) -> str | int:
        for option in options:
            if value.strip() == str(option):
                return option
        listed = " or ".join(repr(o) if isinstance(o, str) else str(o) for o in options)
        raise ValueError(f"must be {listed}" + (f" ({unit})" if unit else ""))

    return parse


def _bounded(kind: Callable[[str], int | float], name: str, gt: float | None = None, ge: float | None = None,
             le: float | None = None) -> Parser:
    def parse(value: str) -> int | float:
        try:
            number = kind(value.strip())
        except ValueError:
            raise ValueError(f"must be {name}") from None
        if gt is not None and not number > gt:
            raise ValueError(f"must be greater than {gt}")
        if ge is not None and not number >= ge:
            raise ValueError(f"must be at least {ge}")
        if le is not None and not number <= le:
            raise ValueError(f"must be at most {le}")
        return number

    return parse


def _whole(gt: int | None = None, ge: int | None = None, le: int | None = None) -> Parser:
    return _bounded(int, "a whole number", gt, ge, le)


def _number(gt: float | None = None) -> Parser:
    return _bounded(float, "a number", gt)


_TRUE = ("1", "on", "t", "true", "y", "yes")
_FALSE = ("0", "off", "f", "false", "n", "no")


def _flag(value: str) -> bool:
    word = value.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError("must be true or false")


def _items(value: str) -> list[str]:
    """A comma-separated list."""
    return [part.strip() for part in value.split(",") if part.strip()]


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL such as https://licensing.example.com")
    if parts.path not in ("", "/"):
        raise ValueError("must not contain a path")
    return value.rstrip("/")


def _email(value: str) -> str:
    if "@" not in value or value.startswith("@") or value.endswith("@"):
        raise ValueError("must be an e-mail address")
    return value


_REQUIRED: Any = MISSING
_ANY_TEXT = _text()


def _setting(alias: str, default: Any = _REQUIRED, *, parse: Parser = _ANY_TEXT, secret: bool = False) -> Any:
    """A field read from the app setting `alias`; defaults are taken as they are, given values parsed.
    Secrets are left out of the repr, so printing settings never shows one."""
    metadata = {"alias": alias, "parse": parse, "secret": secret}
    if isinstance(default, list):
        return field(default_factory=list, metadata=metadata, repr=not secret)
    return field(default=default, metadata=metadata, repr=not secret)


@dataclass(frozen=True)
class SettingField:
    """What the documentation and infra tests read about a setting."""

    name: str
    alias: str
    default: Any
    secret: bool


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting the server reads; each field's alias is its app-setting name."""

    # --- environment -------------------------------------------------------------------------
    environment: Literal["local", "production"] = _setting("APP_ENVIRONMENT", "production",
                                                           parse=_one_of("local", "production"))
    public_base_url: str = _setting("PUBLIC_BASE_URL", parse=_base_url)
    support_email: str = _setting("SUPPORT_EMAIL", parse=_email)
    default_language: Literal["en", "de"] = _setting("DEFAULT_LANGUAGE", "en", parse=_one_of("en", "de"))

    # --- storage (the Functions host's own account; tables and queues live there too) -------
    # Locally a connection string; in Azure the managed-identity form
    # (AzureWebJobsStorage__tableServiceUri / __queueServiceUri / __clientId).
    storage_connection_string: str | None = _setting("AzureWebJobsStorage", None)
    storage_table_uri: str | None = _setting("AzureWebJobsStorage__tableServiceUri", None)
    storage_queue_uri: str | None = _setting("AzureWebJobsStorage__queueServiceUri", None)
    storage_client_id: str | None = _setting("AzureWebJobsStorage__clientId", None)
    # Time budget for storage retries on the license-check hot path (PRODUCT.md section 4).
    storage_hot_path_budget_seconds: float = _setting("STORAGE_HOT_PATH_BUDGET_SECONDS", 2.0, parse=_number(gt=0))

    # --- e-mail --------------------------------------------------------------------------------
    # Empty endpoint: mail goes to the local outbox (only allowed in local development).
    acs_endpoint: str | None = _setting("ACS_ENDPOINT", None)
    # Access key for ACS; empty in Azure, where the managed identity is used.
    acs_access_key: str | None = _setting("ACS_ACCESS_KEY", None)
    mail_sender: str = _setting("MAIL_SENDER", "DoNotReply@securemailmerge.example", parse=_email)
    mail_outbox_dir: str = _setting("MAIL_OUTBOX_DIR", ".outbox")

    # --- sessions and forms ----------------------------------------------------------------------
    # Keys the stored dashboard session ids (HMAC); at least 32 random characters (`openssl rand -hex 32`).
    session_secret: str = _setting("SESSION_SECRET", parse=_text(min_length=32), secret=True)
    session_idle_minutes: int = _setting("SESSION_IDLE_MINUTES", 30, parse=_whole(gt=0))
    session_absolute_hours: int = _setting("SESSION_ABSOLUTE_HOURS", 8, parse=_whole(gt=0))

    # --- Microsoft Entra ID ------------------------------------------------------------------------
    entra_client_id: str = _setting("ENTRA_CLIENT_ID")
    entra_client_secret: str = _setting("ENTRA_CLIENT_SECRET", secret=True)
    # Authority for sign-in: https://login.microsoftonline.com/organizations in production.
    entra_authority: str = _setting("ENTRA_AUTHORITY", "https://login.microsoftonline.com/organizations")
    # Issuer of v1 access tokens; {tid} is replaced by the token's tenant id.
    entra_v1_issuer_template: str = _setting("ENTRA_V1_ISSUER_TEMPLATE", "https://sts.windows.net/{tid}/")
    # Accepted `aud` values of add-in tokens: the API's client id and/or App ID URI.
    api_audiences: list[str] = _setting("API_AUDIENCES", parse=_items)
    api_scope: str = _setting("API_SCOPE", "access_as_user")
    allow_personal_accounts: bool = _setting("ALLOW_PERSONAL_ACCOUNTS", False, parse=_flag)
    token_clock_skew_seconds: int = _setting("TOKEN_CLOCK_SKEW_SECONDS", 90, parse=_whole(ge=60, le=120))

    # --- Stripe ------------------------------------------------------------------------------------
    stripe_secret_key: str = _setting("STRIPE_SECRET_KEY", secret=True)
    # Several secrets are accepted at once while the endpoint secret is rotated.
    stripe_webhook_secrets: list[str] = _setting("STRIPE_WEBHOOK_SECRETS", parse=_items, secret=True)
    stripe_api_version: str = _setting("STRIPE_API_VERSION", "2026-10-28.endive")
    # Empty: Stripe itself. Locally: the emulator.
    stripe_api_base: str | None = _setting("STRIPE_API_BASE", None)
    stripe_price_lookup_key: str = _setting("STRIPE_PRICE_LOOKUP_KEY", "securemailmerge_seat_monthly")
    # The annual price (same volume tiers, billed yearly) buyers may choose at purchase.
    stripe_yearly_price_lookup_key: str = _setting("STRIPE_YEARLY_PRICE_LOOKUP_KEY", "securemailmerge_seat_yearly")
    # Stripe Tax computes VAT (EU reverse charge for a valid foreign VAT ID); needs Stripe Tax activated
    # in the Stripe account (docs/operations.md).
    stripe_automatic_tax: bool = _setting("STRIPE_AUTOMATIC_TAX", True, parse=_flag)
    # Organisation purchases from this many licenses may pay by invoice (bank transfer), due this many days
    # after the invoice is issued.
    invoice_min_quantity: int = _setting("INVOICE_MIN_QUANTITY", 10, parse=_whole(ge=1))
    invoice_days_until_due: int = _setting("INVOICE_DAYS_UNTIL_DUE", 30, parse=_one_of(14, 30, unit="days"))
    # A buyer who has not opened the setup page this long after paying gets the "finish setup" mail.
    setup_reminder_minutes: int = _setting("SETUP_REMINDER_MINUTES", 30, parse=_whole(ge=0))
    max_quantity: int = _setting("MAX_QUANTITY", 10_000, parse=_whole(ge=1, le=10_000))
    # An assignment of more new addresses than this answers 202 at once and runs as a job with a progress
    # bar (services/assignment_job.py); smaller ones write their seats before answering.
    bulk_assign_threshold: int = _setting("BULK_ASSIGN_THRESHOLD", 500, parse=_whole(ge=1, le=10_000))
    grace_days: int = _setting("GRACE_DAYS", 14, parse=_whole(ge=0))
    invitation_days: int = _setting("INVITATION_DAYS", 7, parse=_whole(ge=1, le=30))

    # --- the seller on e-invoices (XRechnung, ZUGFeRD; services/e_invoice_documents.py) -----------------
    # All but the phone are needed for e-invoices; while one is missing the downloads answer 409 naming it
    # and the billing page shows no e-invoice links. XRechnung also needs the phone (its rule BR-DE-6).
    seller_legal_name: str | None = _setting("SELLER_LEGAL_NAME", None)
    seller_street: str | None = _setting("SELLER_STREET", None)
    seller_postal_code: str | None = _setting("SELLER_POSTAL_CODE", None)
    seller_city: str | None = _setting("SELLER_CITY", None)
    seller_country: str = _setting("SELLER_COUNTRY", "DE", parse=_text(pattern=r"^[A-Z]{2}$"))  # ISO 3166-1 alpha-2
    seller_vat_id: str | None = _setting("SELLER_VAT_ID", None, parse=_text(pattern=r"^[A-Z]{2}[A-Z0-9]{2,13}$"))
    # The commercial register entry, e.g. "Amtsgericht München, HRB 123456".
    seller_register: str | None = _setting("SELLER_REGISTER", None)
    # The seller's contact e-mail on e-invoices; empty: SUPPORT_EMAIL.
    seller_email: str | None = _setting("SELLER_EMAIL", None, parse=_email)
    seller_phone: str | None = _setting("SELLER_PHONE", None)

    # --- license check -----------------------------------------------------------------------------
    # PEM private keys (EC P-256), newest first, separated by blank lines; the first signs new
    # leases, the others stay published while leases they signed may still be cached.
    lease_signing_keys: str | None = _setting("LEASE_SIGNING_KEYS", None, secret=True)
    lease_ttl_hours: int = _setting("LEASE_TTL_HOURS", 72, parse=_whole(gt=0))
    addin_origins: list[str] = _setting("ADDIN_ORIGINS", [], parse=_items)
    license_rate_limit_per_minute: int = _setting("LICENSE_RATE_LIMIT_PER_MINUTE", 120, parse=_whole(gt=0))

    @property
    def is_local(self) -> bool:
        return self.environment == "local"

    @property
    def uses_localhost_url(self) -> bool:
        """Only a `http://localhost` base URL relaxes the cookie prefix (PRODUCT.md section 3)."""
        parts = urlsplit(self.public_base_url)
        return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")

    def problems(self) -> list[str]:
        """The rules across settings, and those of a real deployment: one line per problem."""
        problems: list[str] = []
        if not self.storage_connection_string and not (self.storage_table_uri and self.storage_queue_uri):
            problems.append(
                "AzureWebJobsStorage: set a connection string, or AzureWebJobsStorage__tableServiceUri and "
                "AzureWebJobsStorage__queueServiceUri for managed identity"
            )
        if not self.is_local:
            if not self.public_base_url.startswith("https://"):
                problems.append("PUBLIC_BASE_URL: must be https outside local development")
            if urlsplit(self.entra_authority).hostname in ("localhost", "127.0.0.1"):
                problems.append("ENTRA_AUTHORITY: a localhost authority is only allowed in local development")
            if self.stripe_api_base:
                problems.append("STRIPE_API_BASE: the Stripe emulator is only allowed in local development")
            if not self.lease_signing_keys:
                problems.append("LEASE_SIGNING_KEYS: required outside local development")
            if not self.acs_endpoint:
                problems.append("ACS_ENDPOINT: required outside local development (the outbox is local only)")
            for name, value in self._secrets().items():
                if value and any(marker in value.lower() for marker in PLACEHOLDER_MARKERS):
                    problems.append(f"{name}: still holds a placeholder value; set the real secret")
        return problems

    def _secrets(self) -> dict[str, str | None]:
        """Setting name -> value of every secret, for the placeholder check."""
        out: dict[str, str | None] = {}
        for setting in setting_fields():
            if setting.secret:
                value = getattr(self, setting.name)  # a list for the comma-separated settings
                out[setting.alias] = ",".join(value) if isinstance(value, list) else value
        out["ACS_ACCESS_KEY"] = self.acs_access_key
        return out


def setting_fields() -> list[SettingField]:
    return [SettingField(f.name, f.metadata["alias"], [] if f.default_factory is list else f.default,
                         f.metadata["secret"]) for f in fields(Settings)]


def _local_settings_values(app_root: Path) -> dict[str, str]:
    path = app_root / "local.settings.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"local.settings.json is not valid JSON: {exc}") from exc
    values = data.get("Values", {})
    return {str(k): str(v) for k, v in values.items() if v is not None}


def load_settings(environ: Mapping[str, str] | None = None, app_root: Path = APP_ROOT) -> Settings:
    """Build settings from `local.settings.json` overlaid by the environment; one clear error."""
    source: dict[str, str] = _local_settings_values(app_root) if environ is None else {}
    source.update(os.environ if environ is None else environ)
    # Empty strings mean "not set", as in the portal's app settings.
    source = {k: v for k, v in source.items() if v != ""}
    # A Key Vault reference that did not resolve stays as its literal text, which would pass as a
    # (publicly guessable) secret: refuse it and say what to check.
    unresolved = sorted(k for k in _aliases() if str(source.get(k, "")).startswith("@Microsoft.KeyVault("))
    if unresolved:
        raise SettingsError(
            "Invalid configuration:\n"
            + "\n".join(
                f"  {name}: the Key Vault reference did not resolve (does the secret exist, and may the app's "
                "identity read it?)"
                for name in unresolved
            )
        )
    values: dict[str, Any] = {}
    problems: list[str] = []
    for setting in fields(Settings):
        alias = setting.metadata["alias"]
        raw = source.get(alias)
        if raw is None:
            if setting.default is MISSING and setting.default_factory is MISSING:
                problems.append(f"{alias}: missing")
            continue
        try:
            values[setting.name] = setting.metadata["parse"](raw)
        except ValueError as exc:
            problems.append(f"{alias}: {exc}")
    settings = None if problems else Settings(**values)
    if settings is not None:
        problems = settings.problems()
    if settings is None or problems:
        raise SettingsError("Invalid configuration:\n" + "\n".join(f"  {line}" for line in problems))
    return settings


def _aliases() -> list[str]:
    return [setting.alias for setting in setting_fields()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
