"""What every seat change shares: who acts with which adapters, and the errors a change can end in.

A change that ends in one of these errors has written nothing (services/unit_of_work.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.audit import Actor
from services.settings import Settings
from services.unit_of_work import Refused, SubscriptionNotFound, UnitOfWork

__all__ = ["Context", "SeatError", "SubscriptionNotFound", "NoSeatsFree", "NotAssigned", "AlreadyAssigned",
           "SubscriptionEnded", "ListTooLarge", "UndoExpired", "SeatTaken",
           "RequestIdReused"]

# One transaction holds 100 operations: the subscription entity and one audit row leave 98 seats.
SEATS_PER_TRANSACTION = 98


@dataclass(frozen=True)
class Context:
    """What a seat change needs besides the rows: storage, settings, who acts."""

    uow: UnitOfWork
    settings: Settings
    actor: Actor


class SeatError(Refused):
    code = "seat_error"
    status = 400


class NoSeatsFree(SeatError):
    code, status = "no_seats_free", 409

    def __init__(self, needed: int, free: int):
        super().__init__(
            f"{needed} new license{'s' if needed != 1 else ''} needed but only {free} free; nothing was assigned. "
            "Raise the quantity or revoke licenses first."
        )
        self.needed, self.free = needed, free


class NotAssigned(SeatError):
    code, status = "not_assigned", 404

    def __init__(self, email: str):
        super().__init__(f"{email} holds no license in this subscription")
        self.email = email


class AlreadyAssigned(SeatError):
    code, status = "already_assigned", 409

    def __init__(self, email: str):
        super().__init__(f"{email} already holds a license in this subscription")
        self.email = email


class ListTooLarge(SeatError):
    code, status = "list_too_large", 400

    def __init__(self, characters: int, limit: int):
        super().__init__(f"the addresses add up to {characters:,} characters, more than one assignment can hold "
                         f"({limit:,}); nothing was assigned: split the list into smaller imports")


class RequestIdReused(SeatError):
    code, status = "request_id_reused", 409

    def __init__(self, request_id: str):
        super().__init__(f"the request id {request_id} was used for another list of addresses; nothing was "
                         "assigned: send this list with a new request id")
        self.request_id = request_id


class SubscriptionEnded(SeatError):
    code, status = "subscription_ended", 409

    def __init__(self) -> None:
        super().__init__("the subscription has ended: licenses can no longer be assigned")


class UndoExpired(SeatError):
    code, status = "undo_expired", 409

    def __init__(self, email: str, minutes: int):
        super().__init__(f"no revoke of {email} in the last {minutes} minutes to undo; assign the license again "
                         "instead (the address gets a welcome e-mail)")
        self.email = email


class SeatTaken(SeatError):
    code, status = "seat_taken", 409

    def __init__(self, email: str):
        super().__init__(f"the revoke of {email} cannot be undone: its license is no longer free (assigned to "
                         "someone else, or the quantity was lowered); nothing was changed")
        self.email = email
