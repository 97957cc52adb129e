"""The audit log: who did what and when, stored in the subscription's own partition.

Entries are written in the same entity-group transaction as the change they describe (they are part
of a unit of work's plan), so the log can never disagree with the data. They read newest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Actor:
    tid: str
    oid: str
    email: str
    name: str = ""

    @classmethod
    def system(cls, what: str) -> Actor:
        """Stripe, the reconciliation timer, ...: changes nobody signed in made."""
        return cls(tid="", oid="", email="", name=what)


@dataclass(frozen=True)
class AuditEntry:
    actor: Actor
    action: str
    target: str = ""
    before: Any = None
    after: Any = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_json(self) -> dict[str, Any]:
        """As the API and pages show it."""
        return {
            "at": self.at.isoformat(),
            "actor_email": self.actor.email,
            "actor_name": self.actor.name,
            "actor_tid": self.actor.tid,
            "actor_oid": self.actor.oid,
            "action": self.action,
            "target": self.target,
            "before": self.before,
            "after": self.after,
        }
