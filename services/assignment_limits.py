"""Assignments that reach out to many organisations at once need the owner's confirmation (relay
protection, README "Mail limits"): each newly licensed address gets a welcome mail, so a list
spreading over many unfamiliar domains is refused until the request confirms it.

Familiar domains: the owner's own and those already holding a seat in the subscription. The check runs
before the assignment (nothing written when it refuses); it is a policy, not an invariant, so it reads
the seats only when the list names more domains than the threshold at all.
"""

from __future__ import annotations

from services.seat_change import SeatError
from services.subscription import Subscription
from services.unit_of_work import UnitOfWork

# One assignment may add addresses of this many unfamiliar domains without confirmation.
DOMAINS_WITHOUT_CONFIRMATION = 3


class DomainsNeedConfirmation(SeatError):
    code, status = "confirm_domains", 409

    def __init__(self, domains: list[str]):
        super().__init__(
            f"the addresses belong to {len(domains)} domains that hold no license in this subscription yet "
            f"({', '.join(domains[:20])}{', ...' if len(domains) > 20 else ''}); each address gets a welcome "
            "mail, so confirm these domains (confirm_domains) to assign them; nothing was assigned"
        )
        self.domains = domains


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def check_domains(uow: UnitOfWork, subscription: Subscription, addresses: list[str], *, confirmed: bool) -> None:
    """Raise DomainsNeedConfirmation (nothing written) when `addresses` add more than
    DOMAINS_WITHOUT_CONFIRMATION domains new to the subscription and the request did not confirm them."""
    if confirmed:
        return
    own = _domain(subscription.owner_email)
    listed = sorted({_domain(a) for a in addresses} - {own})
    if len(listed) <= DOMAINS_WITHOUT_CONFIRMATION:
        return
    familiar = {_domain(seat.email) for seat in uow.subscriptions.seats(subscription.id)}
    unfamiliar = [d for d in listed if d not in familiar]
    if len(unfamiliar) > DOMAINS_WITHOUT_CONFIRMATION:
        raise DomainsNeedConfirmation(unfamiliar)
