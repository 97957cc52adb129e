"""The audit log in words (PRODUCT.md capability 10): one sentence per entry in the page's language,
with the details behind it.

Only the page reads entries this way. The stored entries keep their machine-readable form (action
code, target, before/after JSON), and so do the JSON API and the CSV export (services/audit_log.py).

Every action a service writes has a sentence `audit.sentence.<action>` in both catalogs, some with
variants (`...<action>.<variant>`) and real plurals (`....one` / `....other`, services/i18n.py); a
unit test reads services/ for the actions written and fails on one without a sentence. An action
with no sentence (an entry of an older or newer version) reads as a neutral sentence naming its code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.audit_log import field_changes
from services.i18n import catalog, plural_key, translator

SENTENCE = "audit.sentence."
UNKNOWN = "audit.sentence.unknown"
# Bulk entries name their addresses: the details show this many, then how many more.
SHOWN_ADDRESSES = 50
# Stripe's subscription statuses with a name of their own; others show as Stripe sends them.
STRIPE_STATUSES = ("active", "trialing", "past_due", "unpaid", "canceled", "incomplete", "incomplete_expired",
                   "paused")


@dataclass(frozen=True)
class Detail:
    label: str
    value: str
    code: bool = False  # shown as code (the action code, JSON)


@dataclass(frozen=True)
class Described:
    """One entry as the page shows it: when, the sentence, the details behind it."""

    at: str
    when: str
    sentence: str
    key: str  # the catalog key of the sentence (UNKNOWN for an action without one)
    details: tuple[Detail, ...] = field(default_factory=tuple)


class _Reader:
    """What a sentence needs from an entry, in the page's language."""

    def __init__(self, entry: Mapping[str, Any], language: str):
        self.entry = entry
        self.language = language
        self.t = translator(language)
        self.before = _fields(entry.get("before"))
        self.after = _fields(entry.get("after"))
        self.target = str(entry.get("target") or "")
        self.details: list[Detail] = []

    @property
    def actor(self) -> str:
        email, name = self.entry.get("actor_email") or "", self.entry.get("actor_name") or ""
        if email:
            return str(email)
        if name and not self.entry.get("actor_oid"):
            # Changes nobody signed in made (services/audit.Actor.system): Stripe, reconciliation...
            key = f"audit.actor.{name}"
            return self.t(key) if key in catalog("en") else str(name)
        return str(name) or self.t("audit.actor.unknown")

    def count(self, *found: Any) -> int:
        """The first of `found` that is a list's length or a number, else the number the target starts
        with ("8 addresses", as bulk entries name it), else 0."""
        for value in found:
            if isinstance(value, list):
                return len(value)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        match = re.match(r"\s*(\d+)", self.target)
        return int(match.group(1)) if match else 0

    def date(self, value: Any) -> str:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value or "—")
        return moment.strftime("%d.%m.%Y" if self.language == "de" else "%Y-%m-%d")

    def status(self, value: Any) -> str:
        return self.t(f"audit.stripe_status.{value}") if value in STRIPE_STATUSES else str(value or "—")

    def interval(self, value: Any) -> str:
        key = f"audit.interval.{value}"
        return self.t(key) if key in catalog("en") else str(value or "—")

    def permissions(self, value: Any) -> str:
        names = [self.t(f"permission.name.{p}") for p in value or [] if isinstance(p, str)]
        return ", ".join(names) or self.t("audit.empty_value")

    def addresses(self, value: Any) -> None:
        if not isinstance(value, list) or not value:
            return
        shown = ", ".join(str(a) for a in value[:SHOWN_ADDRESSES])
        if len(value) > SHOWN_ADDRESSES:
            shown += " " + self.t("audit.detail.more", count=len(value) - SHOWN_ADDRESSES)
        self.detail("audit.detail.addresses", shown)

    def detail(self, label_key: str, value: Any, code: bool = False) -> None:
        self.details.append(Detail(self.t(label_key), str(value), code))


def _fields(value: Any) -> dict[str, Any]:
    """A before/after value as named fields ({} for none, or for a value of another shape)."""
    return value if isinstance(value, dict) else {}


# A sentence's builder returns the catalog key (before plurals) and the values it names.
Sentence = tuple[str, dict[str, Any]]
Builder = Callable[[_Reader], Sentence]


def _plain(action: str) -> Builder:
    """A sentence naming who and the address the entry is about (its target)."""
    return lambda r: (SENTENCE + action, {"actor": r.actor, "email": r.target})


def _kind(action: str) -> Builder:
    """Invitations: the delegate's invitation or the ownership offer (`after.kind`)."""

    def build(r: _Reader) -> Sentence:
        kind = "owner" if r.after.get("kind") == "owner" else "delegate"
        return f"{SENTENCE}{action}.{kind}", {"actor": r.actor, "email": r.target}

    return build


def _license_assigned(r: _Reader) -> Sentence:
    if r.after.get("merge"):
        r.detail("audit.detail.from_subscription", r.after.get("from_subscription", ""), code=True)
        return SENTENCE + "license.assigned.merge", {"actor": r.actor, "email": r.target}
    return SENTENCE + "license.assigned", {"actor": r.actor, "email": r.target}


def _bulk(action: str) -> Builder:
    """A bulk change naming its addresses (`after.emails`; cut short in a very long entry, counted by
    the target then)."""

    def build(r: _Reader) -> Sentence:
        emails = r.after.get("emails")
        r.addresses(emails)
        return SENTENCE + action, {"actor": r.actor, "count": r.count(*([] if r.after.get("truncated") else [emails]))}

    return build


def _license_revoked(r: _Reader) -> Sentence:
    if "bound" in r.before:
        r.detail("audit.detail.signed_in", r.t("licenses.bound.yes" if r.before["bound"] else "licenses.bound.never"))
    if r.before.get("assigned_at"):
        r.detail("audit.detail.assigned_at", r.date(r.before["assigned_at"]))
    return SENTENCE + "license.revoked", {"actor": r.actor, "email": r.target}


def _license_reassigned(r: _Reader) -> Sentence:
    return SENTENCE + "license.reassigned", {"actor": r.actor, "from_email": r.before.get("email") or "—",
                                             "to_email": r.after.get("email") or r.target}


def _license_restored(r: _Reader) -> Sentence:
    if r.after.get("revoked_at"):
        r.detail("audit.detail.revoked_at", str(r.after["revoked_at"])[:19].replace("T", " "))
    return SENTENCE + "license.restored", {"actor": r.actor, "email": r.target}


def _step_marked(r: _Reader) -> Sentence:
    mark = r.after.get("mark")
    variant = mark if mark in ("done", "not_needed") else "cleared"
    step_key = f"setup.step.{r.target}.name"
    step = r.t(step_key) if step_key in catalog("en") else r.target
    return f"{SENTENCE}setup.step_marked.{variant}", {"actor": r.actor, "step": step}


def _subscription_updated(r: _Reader) -> Sentence:
    old_status, new_status = r.before.get("status"), r.after.get("status")
    old, new = r.before.get("quantity"), r.after.get("quantity")
    if r.target:
        r.detail("audit.detail.reason", r.target, code=True)
    values: dict[str, Any] = {"actor": r.actor}
    if r.after.get("interval") and r.before.get("interval") != r.after["interval"]:
        # A switch of the billing interval took effect (services/interval_change.py).
        if old_status != new_status:
            r.detail("audit.detail.status", f"{r.status(old_status)} → {r.status(new_status)}")
        if old != new:
            r.detail("audit.detail.quantity", f"{old} → {new}")
        values.update(old_interval=r.interval(r.before.get("interval")), new_interval=r.interval(r.after["interval"]))
        return SENTENCE + "subscription.updated.interval", values
    status_changed = old_status != new_status and new_status is not None
    quantity_changed = old != new and isinstance(new, int)
    if status_changed:
        values.update(old_status=r.status(old_status), new_status=r.status(new_status))
    if quantity_changed:
        values.update(old=old if old is not None else "—", count=new)
    variant = ("both" if status_changed and quantity_changed else "status" if status_changed
               else "quantity" if quantity_changed else "other")
    return f"{SENTENCE}subscription.updated.{variant}", values


def _delegate_invited(r: _Reader) -> Sentence:
    r.detail("audit.detail.permissions", r.permissions(r.after.get("permissions")))
    return SENTENCE + "delegate.invited", {"actor": r.actor, "email": r.target}


def _permissions_changed(r: _Reader) -> Sentence:
    r.detail("audit.detail.permissions_before", r.permissions(r.before.get("permissions")))
    r.detail("audit.detail.permissions_after", r.permissions(r.after.get("permissions")))
    return SENTENCE + "delegate.permissions_changed", {"actor": r.actor, "email": r.target}


def _delegate_removed(r: _Reader) -> Sentence:
    r.detail("audit.detail.permissions_before", r.permissions(r.before.get("permissions")))
    return SENTENCE + "delegate.removed", {"actor": r.actor, "email": r.target}


def _delegate_accepted(r: _Reader) -> Sentence:
    r.detail("audit.detail.invited_address", r.target)
    r.detail("audit.detail.permissions", r.permissions(r.after.get("permissions")))
    return SENTENCE + "delegate.accepted", {"actor": r.actor}


def _ownership_offered(r: _Reader) -> Sentence:
    if "billing_email_follows" in r.after:
        r.detail("audit.detail.billing_email_follows", r.t("audit.yes" if r.after["billing_email_follows"]
                                                            else "audit.no"))
    return SENTENCE + "ownership.offered", {"actor": r.actor, "email": r.target}


def _ownership_transferred(r: _Reader) -> Sentence:
    return SENTENCE + "ownership.transferred", {"actor": r.actor, "email": r.after.get("owner") or r.target,
                                                "former": r.before.get("owner") or "—"}


def _invitation_expired(r: _Reader) -> Sentence:
    kind = "owner" if r.after.get("kind") == "owner" else "delegate"
    return f"{SENTENCE}invitation.expired.{kind}", {"email": r.target}


def _settings_changed(r: _Reader) -> Sentence:
    empty = r.t("audit.empty_value")
    for name, old, new in field_changes(dict(r.entry)) or []:
        label = f"audit.field.{name}"
        r.details.append(Detail(r.t(label) if label in catalog("en") else name, f"{old or empty} → {new or empty}"))
    return SENTENCE + "billing.settings_changed", {"actor": r.actor}


def _actor_only(action: str) -> Builder:
    return lambda r: (SENTENCE + action, {"actor": r.actor})


def _merge_started(r: _Reader) -> Sentence:
    r.addresses(r.after.get("emails"))
    return SENTENCE + "merge.started", {"actor": r.actor, "count": r.count(r.after.get("subscriptions"))}


def _merge_completed(r: _Reader) -> Sentence:
    return SENTENCE + "merge.completed", {"actor": r.actor, "count": r.count(r.after.get("subscriptions"))}


def _subscription_merged(r: _Reader) -> Sentence:
    if r.after.get("email"):
        r.detail("audit.detail.license_of", r.after["email"])
    return SENTENCE + "subscription.merged", {"actor": r.actor, "organisation": r.after.get("into") or r.target}


def _purchased(r: _Reader) -> Sentence:
    if r.after.get("kind") == "individual":
        return SENTENCE + "subscription.purchased.individual", {"actor": r.actor}
    return SENTENCE + "subscription.purchased", {"actor": r.actor, "count": r.count(r.after.get("quantity"))}


def _quantity_changed(r: _Reader) -> Sentence:
    old = r.before.get("quantity")
    return SENTENCE + "quantity.changed", {"actor": r.actor, "old": old if old is not None else "—",
                                           "count": r.count(r.after.get("quantity"))}


def _interval_scheduled(r: _Reader) -> Sentence:
    return SENTENCE + "billing.interval_scheduled", {"actor": r.actor,
                                                     "interval": r.interval(r.after.get("scheduled_interval")),
                                                     "date": r.date(r.after.get("from"))}


def _interval_unscheduled(r: _Reader) -> Sentence:
    return SENTENCE + "billing.interval_unscheduled", {"actor": r.actor,
                                                       "interval": r.interval(r.before.get("scheduled_interval"))}


def _cancellation_scheduled(r: _Reader) -> Sentence:
    return SENTENCE + "cancellation.scheduled", {"actor": r.actor, "date": r.date(r.after.get("ends_at"))}


BUILDERS: dict[str, Builder] = {
    "license.assigned": _license_assigned,
    "licenses.assigned": _bulk("licenses.assigned"),
    "licenses.assignment_failed": _bulk("licenses.assignment_failed"),
    "license.revoked": _license_revoked,
    "license.reassigned": _license_reassigned,
    "license.restored": _license_restored,
    "setup.step_marked": _step_marked,
    "subscription.updated": _subscription_updated,
    "subscription.purchased": _purchased,
    "subscription.merged": _subscription_merged,
    "delegate.invited": _delegate_invited,
    "delegate.permissions_changed": _permissions_changed,
    "delegate.removed": _delegate_removed,
    "delegate.accepted": _delegate_accepted,
    "invitation.resent": _kind("invitation.resent"),
    "invitation.revoked": _kind("invitation.revoked"),
    "invitation.expired": _invitation_expired,
    "ownership.offered": _ownership_offered,
    "ownership.transferred": _ownership_transferred,
    "billing.settings_changed": _settings_changed,
    "billing_portal.opened": _actor_only("billing_portal.opened"),
    "billing.interval_scheduled": _interval_scheduled,
    "billing.interval_unscheduled": _interval_unscheduled,
    "merge.started": _merge_started,
    "merge.completed": _merge_completed,
    "quantity.changed": _quantity_changed,
    "cancellation.scheduled": _cancellation_scheduled,
    "cancellation.undone": _actor_only("cancellation.undone"),
}


def _resolve(key: str, values: Mapping[str, Any], language: str) -> str:
    """The catalog key a sentence uses in `language`: itself, or its plural form for `count`."""
    count = values.get("count")
    if key not in catalog(language) and isinstance(count, int):
        return plural_key(key, count)
    return key


def describe(entry: Mapping[str, Any], language: str) -> Described:
    """`entry` (as AuditEntry.as_json gives it) as one sentence in `language` with its details."""
    reader = _Reader(entry, language)
    action = str(entry.get("action") or "")
    builder = BUILDERS.get(action)
    key, values = builder(reader) if builder else (UNKNOWN, {"actor": reader.actor, "action": action})
    key = _resolve(key, values, language)
    if key not in catalog(language) or key not in catalog("en"):
        key, values = UNKNOWN, {"actor": reader.actor, "action": action}
        reader.details = []
    if key == UNKNOWN:
        _raw_details(reader)
    sentence = reader.t(key, **values)
    details = (Detail(reader.t("audit.detail.action"), action, code=True), *reader.details)
    at = str(entry.get("at") or "")
    return Described(at=at, when=_when(at, language), sentence=sentence, key=key, details=details)


def _raw_details(reader: _Reader) -> None:
    """What an entry without a sentence holds, as stored."""
    if reader.target:
        reader.detail("audit.detail.target", reader.target)
    for label, value in (("audit.before", reader.entry.get("before")), ("audit.after", reader.entry.get("after"))):
        if value is not None:
            reader.detail(label, json.dumps(value, ensure_ascii=False, default=str)[:2000], code=True)


def _when(at: str, language: str) -> str:
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return at
    return moment.strftime("%d.%m.%Y %H:%M:%S" if language == "de" else "%Y-%m-%d %H:%M:%S")


def has_sentence(action: str, language: str) -> bool:
    """Whether `action` has a builder and its sentence (every variant and plural) exists in `language`."""
    if action not in BUILDERS:
        return False
    prefix = SENTENCE + action
    texts = catalog(language)
    return prefix in texts or any(key.startswith(prefix + ".") for key in texts)
