"""The setup checklist (PRODUCT.md capability 1): its steps in the seed's order, which are done, and
the owner's marks on the optional ones.

The server sees some steps done itself: licenses assigned, admin consent recorded for the tenant, a
delegated administrator added. Admin consent is needed only where users see "Need admin approval"
(many tenants let users consent themselves), and delegated administrators are a choice; so the owner
can mark those two steps "done" (say, consent granted in the Entra admin center) or "not needed". The
"Setup is not finished" banner waits for the steps in BANNER_STEPS: assigning licenses, and admin
consent until it is recorded or marked. (Deploying the add-in happens in the Microsoft 365 admin
center, which this server cannot see, so it never holds the banner.)

A mark is a change of the subscription entity: one unit of work, audited in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from adapters.subscription_repository import PartitionWrites
from services.audit import Actor, AuditEntry
from services.subscription import Subscription
from services.unit_of_work import Plan, Refused, UnitOfWork

ASSIGN, INSTALL, CONSENT, DELEGATES = "assign", "install", "consent", "delegates"
STEPS = (ASSIGN, INSTALL, CONSENT, DELEGATES)
DONE, NOT_NEEDED = "done", "not_needed"
MARKS = (DONE, NOT_NEEDED)
# The optional steps the owner may mark, and the subscription field holding the mark.
_MARK_FIELDS = {CONSENT: "setup_consent", DELEGATES: "setup_delegates"}
MARKABLE = tuple(_MARK_FIELDS)
BANNER_STEPS = (ASSIGN, CONSENT)


class InvalidMark(Refused):
    """A form or request naming a step that cannot be marked, or a mark that does not exist; `field`
    names the input."""

    code, status = "invalid_mark", 400

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Step:
    key: str
    done: bool  # the server sees it done
    mark: str = ""  # the owner's: "", DONE or NOT_NEEDED

    @property
    def markable(self) -> bool:
        return self.key in _MARK_FIELDS

    @property
    def settled(self) -> bool:
        """Done, or marked done or not needed."""
        return self.done or bool(self.mark)


def steps(subscription: Subscription, *, consent_granted: bool, has_delegate: bool) -> list[Step]:
    """The checklist in PRODUCT.md's order, with what the server sees and the owner's marks."""
    return [
        Step(ASSIGN, subscription.assigned_count > 0),
        Step(INSTALL, False),
        Step(CONSENT, consent_granted, subscription.setup_consent),
        Step(DELEGATES, has_delegate, subscription.setup_delegates),
    ]


def finished(checklist: list[Step]) -> bool:
    """Whether the "Setup is not finished" banner can go: every step it waits for is settled."""
    return all(step.settled for step in checklist if step.key in BANNER_STEPS)


def parse_step(raw: str | None) -> str:
    if raw not in _MARK_FIELDS:
        raise InvalidMark("step", f"step must be one of {', '.join(MARKABLE)}")
    return raw


def parse_mark(raw: str | None) -> str:
    """DONE, NOT_NEEDED, or "" (empty or missing) to take a mark back."""
    value = raw or ""
    if value and value not in MARKS:
        raise InvalidMark("mark", f"mark must be one of {', '.join(MARKS)}, or empty to take it back")
    return value


def mark(uow: UnitOfWork, actor: Actor, subscription_id: str, step: str, value: str) -> Subscription:
    """Mark an optional step done or not needed ("" takes the mark back); audited as `actor`'s. Marking
    a step as it is already marked writes nothing."""
    step, value = parse_step(step), parse_mark(value)

    def decide(current: Subscription) -> Plan[Subscription]:
        before = getattr(current, _MARK_FIELDS[step])
        if before == value:
            return Plan(current)
        now = datetime.now(UTC)
        changed = (replace(current, setup_consent=value, updated_at=now) if step == CONSENT
                   else replace(current, setup_delegates=value, updated_at=now))
        audit = AuditEntry(actor, "setup.step_marked", target=step, before={"mark": before or None},
                           after={"mark": value or None}, at=now)
        return Plan(changed, PartitionWrites(changed, create=[audit]))

    return uow.change(subscription_id, decide)
