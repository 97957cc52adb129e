"""Server-side dashboard sessions in Table Storage, and the cookie that names them.

The cookie holds only a random id; the table holds its HMAC under SESSION_SECRET, so reading the
table (or a backup of it) gives nobody a usable cookie, nor a way to test guessed ids offline.
Rotating SESSION_SECRET signs everyone out. Sessions end after an idle timeout and an absolute timeout,
the id is rotated at sign-in, sign-out deletes the row, and a timer removes expired rows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.table_storage import SESSIONS, TableStore
from services.settings import Settings

# Writing last-seen on every request would double the storage calls; a minute is precise enough
# for a 30-minute idle timeout.
_TOUCH_EVERY = timedelta(minutes=1)


def cookie_name(settings: Settings) -> str:
    # The __Host- prefix needs Secure; browsers drop Secure cookies on http://localhost (PRODUCT.md
    # section 3: only a http://localhost base URL drops both).
    return "smm_session" if settings.uses_localhost_url else "__Host-smm_session"


def cookie_header(settings: Settings, session_id: str, *, expire: bool = False) -> str:
    parts = [f"{cookie_name(settings)}={'' if expire else session_id}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if not settings.uses_localhost_url:
        parts.append("Secure")
    if expire:
        parts.append("Max-Age=0")
    return "; ".join(parts)


@dataclass(frozen=True)
class Person:
    """A signed-in person: (tid, oid) from validated claims, never an e-mail alone."""

    tid: str
    oid: str
    name: str
    email: str
    # Every sign-in name the token carried (preferred_username, upn, email, unique_name), lower-cased:
    # what an invitation's address is matched against, like a seat's (PRODUCT.md section 3).
    sign_in_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebSession:
    id: str  # the cookie value; never stored
    created_at: datetime
    last_seen_at: datetime
    csrf_token: str
    person: Person | None = None
    # Pending work that must survive a redirect: the MSAL auth-code flow, the consent state.
    pending: dict[str, Any] = field(default_factory=dict)
    flash: tuple[tuple[str, str], ...] = ()

    @property
    def signed_in(self) -> bool:
        return self.person is not None




class SessionStore:
    def __init__(self, storage: TableStore, settings: Settings):
        self._storage = storage
        self._secret = settings.session_secret.encode()
        self._idle = timedelta(minutes=settings.session_idle_minutes)
        self._absolute = timedelta(hours=settings.session_absolute_hours)

    def _key(self, session_id: str) -> tuple[str, str]:
        digest = hmac.new(self._secret, session_id.encode(), hashlib.sha256).hexdigest()
        return digest[:2], digest

    def new(self, *, person: Person | None = None, pending: dict[str, Any] | None = None) -> WebSession:
        now = datetime.now(UTC)
        session = WebSession(
            id=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            csrf_token=secrets.token_urlsafe(32),
            person=person,
            pending=pending or {},
        )
        self.save(session)
        return session

    def load(self, session_id: str | None) -> WebSession | None:
        """The live session with that id; None if unknown or expired (expired rows are deleted)."""
        if not session_id or len(session_id) > 100:
            return None
        partition, row = self._key(session_id)
        entity = self._storage.get(SESSIONS, partition, row)
        if entity is None:
            return None
        session = _from_entity(session_id, entity)
        now = datetime.now(UTC)
        if now - session.last_seen_at > self._idle or now - session.created_at > self._absolute:
            self._storage.delete(SESSIONS, partition, row)
            return None
        if now - session.last_seen_at > _TOUCH_EVERY:
            session = replace(session, last_seen_at=now)
            self.save(session)
        return session

    def save(self, session: WebSession) -> None:
        partition, row = self._key(session.id)
        entity = {
            "PartitionKey": partition,
            "RowKey": row,
            "CreatedAt": session.created_at,
            "LastSeenAt": session.last_seen_at,
            "CsrfToken": session.csrf_token,
            "Pending": json.dumps(session.pending),
            "Flash": json.dumps(list(session.flash)),
        }
        if session.person:
            entity.update(
                Tid=session.person.tid, Oid=session.person.oid, Name=session.person.name, Email=session.person.email,
                SignInNames="\n".join(session.person.sign_in_names),
            )
        self._storage.upsert(SESSIONS, entity)

    def rotate(self, session: WebSession | None, person: Person) -> WebSession:
        """Sign-in: a fresh id and CSRF token for the signed-in person; the old id stops working."""
        if session is not None:
            self.delete(session)
        return self.new(person=person)

    def delete(self, session: WebSession) -> None:
        self._storage.delete(SESSIONS, *self._key(session.id))

    def purge_expired(self) -> int:
        now = datetime.now(UTC)
        rows = self._storage.query(
            SESSIONS,
            where="LastSeenAt lt @idle or CreatedAt lt @absolute",
            parameters={"idle": now - self._idle, "absolute": now - self._absolute},
            select=["PartitionKey", "RowKey"],
        )
        count = 0
        for row in rows:
            self._storage.delete(SESSIONS, row["PartitionKey"], row["RowKey"])
            count += 1
        return count


def _from_entity(session_id: str, entity: dict[str, Any]) -> WebSession:
    person = None
    if entity.get("Oid"):
        person = Person(
            tid=entity["Tid"], oid=entity["Oid"], name=entity.get("Name", ""), email=entity.get("Email", ""),
            sign_in_names=tuple(n for n in str(entity.get("SignInNames") or "").split("\n") if n),
        )
    return WebSession(
        id=session_id,
        created_at=_utc(entity["CreatedAt"]),
        last_seen_at=_utc(entity["LastSeenAt"]),
        csrf_token=entity["CsrfToken"],
        person=person,
        pending=json.loads(entity.get("Pending") or "{}"),
        flash=tuple(tuple(item) for item in json.loads(entity.get("Flash") or "[]")),
    )


def _utc(value: datetime) -> datetime:
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)
