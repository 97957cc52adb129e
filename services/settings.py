"""The one typed settings object.

Read from the process environment (Azure app settings, or `func start` / the local host, which copy
`local.settings.json` `Values` into the environment) and, when running from a checkout, from
`local.settings.json` directly so that scripts and tests see the same values as the host.

Never read at import time: `get_settings()` is called by the code that needs a value, and the result is
cached per process (Azure restarts the worker when app settings change).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

APP_ROOT = Path(__file__).resolve().parent.parent

# Values a developer copies from the sample file; they must never reach a real deployment.
PLACEHOLDER_MARKERS = ("change-me", "placeholder", "local-dev-only")


class SettingsError(RuntimeError):
    """Raised once, at startup, with every missing or invalid setting named."""


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseModel):
    """Every setting the server reads. Field aliases are the app-setting names."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    # --- environment -------------------------------------------------------------------------
    environment: Literal["local", "production"] = Field("production", alias="APP_ENVIRONMENT")
    public_base_url: str = Field(alias="PUBLIC_BASE_URL")
    support_email: str = Field(alias="SUPPORT_EMAIL")
    default_language: Literal["en", "de"] = Field("en", alias="DEFAULT_LANGUAGE")

    # --- storage (the Functions host's own account; tables and queues live there too) -------
    # Locally a connection string; in Azure the managed-identity form
    # (AzureWebJobsStorage__tableServiceUri / __queueServiceUri / __clientId).
    storage_connection_string: str | None = Field(None, alias="AzureWebJobsStorage")
    storage_table_uri: str | None = Field(None, alias="AzureWebJobsStorage__tableServiceUri")
    storage_queue_uri: str | None = Field(None, alias="AzureWebJobsStorage__queueServiceUri")
    storage_client_id: str | None = Field(None, alias="AzureWebJobsStorage__clientId")
    # Time budget for storage retries on the license-check hot path (PRODUCT.md section 4).
    storage_hot_path_budget_seconds: float = Field(2.0, alias="STORAGE_HOT_PATH_BUDGET_SECONDS", gt=0)

    # --- e-mail --------------------------------------------------------------------------------
    # Empty endpoint: mail goes to the local outbox (only allowed in local development).
    acs_endpoint: str | None = Field(None, alias="ACS_ENDPOINT")
    # Access key for ACS; empty in Azure, where the managed identity is used.
    acs_access_key: str | None = Field(None, alias="ACS_ACCESS_KEY")
    mail_sender: str = Field("DoNotReply@securemailmerge.example", alias="MAIL_SENDER")
    mail_outbox_dir: str = Field(".outbox", alias="MAIL_OUTBOX_DIR")

    # --- sessions and forms ----------------------------------------------------------------------
    # Keys the stored dashboard session ids (HMAC); at least 32 random characters (`openssl rand -hex 32`).
    session_secret: str = Field(alias="SESSION_SECRET", min_length=32, json_schema_extra={"secret": True})
    session_idle_minutes: int = Field(30, alias="SESSION_IDLE_MINUTES", gt=0)
    session_absolute_hours: int = Field(8, alias="SESSION_ABSOLUTE_HOURS", gt=0)

    # --- Microsoft Entra ID ------------------------------------------------------------------------
    entra_client_id: str = Field(alias="ENTRA_CLIENT_ID")
    entra_client_secret: str = Field(alias="ENTRA_CLIENT_SECRET", json_schema_extra={"secret": True})
    # Authority for sign-in: https://login.microsoftonline.com/organizations in production.
    entra_authority: str = Field("https://login.microsoftonline.com/organizations", alias="ENTRA_AUTHORITY")
    # Issuer of v1 access tokens; {tid} is replaced by the token's tenant id.
    entra_v1_issuer_template: str = Field("https://sts.windows.net/{tid}/", alias="ENTRA_V1_ISSUER_TEMPLATE")
    # Accepted `aud` values of add-in tokens: the API's client id and/or App ID URI.
    api_audiences: list[str] = Field(alias="API_AUDIENCES")
    api_scope: str = Field("access_as_user", alias="API_SCOPE")
    allow_personal_accounts: bool = Field(False, alias="ALLOW_PERSONAL_ACCOUNTS")
    token_clock_skew_seconds: int = Field(90, alias="TOKEN_CLOCK_SKEW_SECONDS", ge=60, le=120)

    # --- Stripe ------------------------------------------------------------------------------------
    stripe_secret_key: str = Field(alias="STRIPE_SECRET_KEY", json_schema_extra={"secret": True})
    # Several secrets are accepted at once while the endpoint secret is rotated.
    stripe_webhook_secrets: list[str] = Field(alias="STRIPE_WEBHOOK_SECRETS", json_schema_extra={"secret": True})
    stripe_api_version: str = Field("2026-10-28.endive", alias="STRIPE_API_VERSION")
    # Empty: Stripe itself. Locally: the emulator.
    stripe_api_base: str | None = Field(None, alias="STRIPE_API_BASE")
    stripe_price_lookup_key: str = Field("securemailmerge_seat_monthly", alias="STRIPE_PRICE_LOOKUP_KEY")
    # The annual price (same volume tiers, billed yearly) buyers may choose at purchase.
    stripe_yearly_price_lookup_key: str = Field("securemailmerge_seat_yearly", alias="STRIPE_YEARLY_PRICE_LOOKUP_KEY")
    # Stripe Tax computes VAT (EU reverse charge for a valid foreign VAT ID); needs Stripe Tax activated
    # in the Stripe account (docs/operations.md).
    stripe_automatic_tax: bool = Field(True, alias="STRIPE_AUTOMATIC_TAX")
    # Organisation purchases from this many licenses may pay by invoice (bank transfer), due this many days
    # after the invoice is issued.
    invoice_min_quantity: int = Field(10, alias="INVOICE_MIN_QUANTITY", ge=1)
    invoice_days_until_due: int = Field(30, alias="INVOICE_DAYS_UNTIL_DUE")
    # A buyer who has not opened the setup page this long after paying gets the "finish setup" mail.
    setup_reminder_minutes: int = Field(30, alias="SETUP_REMINDER_MINUTES", ge=0)
    max_quantity: int = Field(10_000, alias="MAX_QUANTITY", ge=1, le=10_000)
    # An assignment of more new addresses than this answers 202 at once and runs as a job with a progress
    # bar (services/assignment_job.py); smaller ones write their seats before answering.
    bulk_assign_threshold: int = Field(500, alias="BULK_ASSIGN_THRESHOLD", ge=1, le=10_000)
    grace_days: int = Field(14, alias="GRACE_DAYS", ge=0)
    invitation_days: int = Field(7, alias="INVITATION_DAYS", ge=1, le=30)

    # --- the seller on e-invoices (XRechnung, ZUGFeRD; services/e_invoice_documents.py) -----------------
    # All but the phone are needed for e-invoices; while one is missing the downloads answer 409 naming it
    # and the billing page shows no e-invoice links. XRechnung also needs the phone (its rule BR-DE-6).
    seller_legal_name: str | None = Field(None, alias="SELLER_LEGAL_NAME")
    seller_street: str | None = Field(None, alias="SELLER_STREET")
    seller_postal_code: str | None = Field(None, alias="SELLER_POSTAL_CODE")
    seller_city: str | None = Field(None, alias="SELLER_CITY")
    seller_country: str = Field("DE", alias="SELLER_COUNTRY", pattern=r"^[A-Z]{2}$")  # ISO 3166-1 alpha-2
    seller_vat_id: str | None = Field(None, alias="SELLER_VAT_ID", pattern=r"^[A-Z]{2}[A-Z0-9]{2,13}$")
    # The commercial register entry, e.g. "Amtsgericht München, HRB 123456".
    seller_register: str | None = Field(None, alias="SELLER_REGISTER")
    # The seller's contact e-mail on e-invoices; empty: SUPPORT_EMAIL.
    seller_email: str | None = Field(None, alias="SELLER_EMAIL")
    seller_phone: str | None = Field(None, alias="SELLER_PHONE")

    # --- license check -----------------------------------------------------------------------------
    # PEM private keys (EC P-256), newest first, separated by blank lines; the first signs new
    # leases, the others stay published while leases they signed may still be cached.
    lease_signing_keys: str | None = Field(None, alias="LEASE_SIGNING_KEYS", json_schema_extra={"secret": True})
    lease_ttl_hours: int = Field(72, alias="LEASE_TTL_HOURS", gt=0)
    addin_origins: list[str] = Field(default_factory=list, alias="ADDIN_ORIGINS")
    license_rate_limit_per_minute: int = Field(120, alias="LICENSE_RATE_LIMIT_PER_MINUTE", gt=0)

    _split_lists = field_validator("api_audiences", "stripe_webhook_secrets", "addin_origins", mode="before")(
        classmethod(lambda cls, v: _csv(v))
    )

    @field_validator("public_base_url")
    @classmethod
    def _base_url_shape(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL such as https://licensing.example.com")
        if parts.path not in ("", "/"):
            raise ValueError("must not contain a path")
        return value.rstrip("/")

    @field_validator("invoice_days_until_due")
    @classmethod
    def _payment_term(cls, value: int) -> int:
        if value not in (14, 30):
            raise ValueError("must be 14 or 30 (days)")
        return value

    @field_validator("support_email", "mail_sender", "seller_email")
    @classmethod
    def _email_shape(cls, value: str) -> str:
        if "@" not in value or value.startswith("@") or value.endswith("@"):
            raise ValueError("must be an e-mail address")
        return value

    @property
    def is_local(self) -> bool:
        return self.environment == "local"

    @property
    def uses_localhost_url(self) -> bool:
        """Only a `http://localhost` base URL relaxes the cookie prefix (PRODUCT.md section 3)."""
        parts = urlsplit(self.public_base_url)
        return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
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
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    def _secrets(self) -> dict[str, str | None]:
        """Setting name -> value of every secret, for the placeholder check."""
        out: dict[str, str | None] = {}
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra
            if isinstance(extra, dict) and extra.get("secret"):
                value = getattr(self, name)  # a list for the comma-separated settings
                out[field.alias or name] = ",".join(value) if isinstance(value, list) else value
        out["ACS_ACCESS_KEY"] = self.acs_access_key
        return out


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
    try:
        return Settings.model_validate(source)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _aliases() -> list[str]:
    return [field.alias for field in Settings.model_fields.values() if field.alias]


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "missing"
        loc = ".".join(str(part) for part in err["loc"])
        # Cross-field rules already name their setting at the start of each line.
        lines.append(f"  {loc}: {message}" if loc else f"  {message}")
    return "Invalid configuration:\n" + "\n".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
