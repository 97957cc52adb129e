"""Delegated administration: invite, accept, manage delegates, transfer ownership (PRODUCT.md capability 4).

Every change is one unit of work on the subscription's partition (services/unit_of_work.py): the
invitation or delegate row, the subscription entity (for ownership) and an audit entry commit
together under the subscription's ETag, so two parallel accepts of one invitation cannot both
succeed and a subscription always has exactly one owner. Lookup rows (token hash -> invitation,
person -> subscription) and mails follow the commit and are idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from adapters.subscription_repository import PartitionRow, PartitionWrites
from services.audit import Actor, AuditEntry
from services.delegate import (
    DELEGABLE,
    DELEGATE,
    OWNER_OFFER,
    Acceptor,
    Delegate,
    FormerOwner,
    Invitation,
    InvitationKind,
    InvitationLookup,
    ordered,
    plausible_token,
    token_hash,
)
from services.links import invitation_url
from services.mail import compose
from services.seat import normalise_address, same_tenant
from services.settings import Settings
from services.subscription import Subscription
from services.unit_of_work import (
    AfterCommit,
    PersonRole,
    Plan,
    Refused,
    UnitOfWork,
)

log = logging.getLogger(__name__)


# --- refusals ----------------------------------------------------------------------------------------


class DelegationRefused(Refused):
    code = "delegation_refused"
    status = 409


class AlreadyDelegate(DelegationRefused):
    code = "already_delegate"

    def __init__(self, email: str):
        super().__init__(f"{email} is already a delegated administrator; change their permissions instead")


class IsOwner(DelegationRefused):
    code = "is_owner"

    def __init__(self, email: str):
        super().__init__(f"{email} is the owner of this subscription and holds every permission")


class NoSuchDelegate(DelegationRefused):
    code, status = "not_a_delegate", 404

    def __init__(self, email: str):
        super().__init__(f"{email} is neither a delegated administrator nor invited")


class InvitationUnusable(Refused):
    """The link cannot be used; `reason` says why (the page explains what to do)."""

    status = 410

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.code = reason
        self.reason = reason


def _unusable_not_found() -> InvitationUnusable:
    return InvitationUnusable("invitation_invalid", "This invitation link is not valid any more: it was used, "
                              "replaced by a newer invitation or revoked. Ask the owner to send it again.")


def _unusable_expired() -> InvitationUnusable:
    return InvitationUnusable("invitation_expired", "This invitation has expired. Ask the owner to send it again.")


class WrongAccount(Refused):
    code, status = "wrong_account", 403

    def __init__(self, invited: str):
        super().__init__(f"This invitation is for {invited}, and you are signed in with another account. Sign in "
                         "with the invited Microsoft 365 account (a private browser window helps).")


class WrongTenant(Refused):
    code, status = "wrong_tenant", 403

    def __init__(self) -> None:
        super().__init__("This invitation belongs to another organisation's Microsoft 365 tenant. Sign in with "
                         "your work account of that organisation.")


# --- what callers get back ------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    """A fresh invitation and its token: the link is shown once (to the owner) and mailed, never stored."""

    invitation: Invitation
    token: str
    link: str


@dataclass(frozen=True)
class Accepted:
    subscription: Subscription
    kind: InvitationKind


@dataclass(frozen=True)
class InvitationView:
    """What the invitation page shows before anything is accepted (a GET changes nothing)."""

    subscription: Subscription
    invitation: Invitation


@dataclass(frozen=True)
class Roster:
    delegates: list[Delegate]
    invitations: list[Invitation]


# --- reading ---------------------------------------------------------------------------------------


def roster(uow: UnitOfWork, subscription_id: str) -> Roster:
    repository = uow.subscriptions
    return Roster(sorted(repository.delegates(subscription_id), key=lambda d: d.email),
                  sorted(repository.invitations(subscription_id), key=lambda i: (i.kind, i.email)))


def describe(uow: UnitOfWork, token: str) -> InvitationView:
    """The invitation a link names, for its confirmation page; InvitationUnusable if it cannot be used."""
    if not plausible_token(token):
        raise _unusable_not_found()
    found = uow.lookups.invitation(token_hash(token))
    if found is None:
        raise _unusable_not_found()
    subscription = uow.subscriptions.load(found.subscription_id)
    invitation = uow.subscriptions.invitation(found.subscription_id, found.kind, found.email)
    if subscription is None or invitation is None or invitation.token_hash != token_hash(token):
        raise _unusable_not_found()
    if invitation.expired():
        raise _unusable_expired()
    return InvitationView(subscription, invitation)


# --- inviting -------------------------------------------------------------------------------------------


def _issue(settings: Settings, subscription: Subscription, invitation: Invitation, token: str,
           replaced: Invitation | None, after: AfterCommit) -> Issued:
    link = invitation_url(settings, token)
    after.invitation_lookups.append(InvitationLookup(invitation.token_hash, subscription.id, invitation.kind,
                                                     invitation.email, invitation.expires_at))
    if replaced is not None and replaced.token_hash != invitation.token_hash:
        after.invitation_lookups.append(InvitationLookup(replaced.token_hash, subscription.id, replaced.kind,
                                                         replaced.email, replaced.expires_at, gone=True))
    after.mails.append(compose.invitation(settings, subscription, invitation, link))
    return Issued(invitation, token, link)


def invite(uow: UnitOfWork, settings: Settings, actor: Actor, subscription_id: str, email: str,
           permissions: frozenset[str]) -> Issued:
    """Invite `email` as a delegate with `permissions`; inviting a pending address again renews its
    invitation (new permissions, new token: the old link stops working)."""
    email = normalise_address(email)

    def decide(subscription: Subscription) -> Plan[Issued]:
        if normalise_address(subscription.owner_email) == email:
            raise IsOwner(email)
        if any(d.email == email for d in uow.subscriptions.delegates(subscription_id)):
            raise AlreadyDelegate(email)
        pending = uow.subscriptions.invitation(subscription_id, DELEGATE, email)
        invitation, token = Invitation.new(email, DELEGATE, actor, settings.invitation_days, permissions=permissions)
        after = AfterCommit()
        issued = _issue(settings, subscription, invitation, token, pending, after)
        audit = AuditEntry(actor, "delegate.invited", target=email, after={"permissions": ordered(permissions)})
        return Plan(issued, _writes(subscription, audit, put=[_with_etag(invitation, pending)]), after)

    return uow.change(subscription_id, decide)


def resend(uow: UnitOfWork, settings: Settings, actor: Actor, subscription_id: str, email: str,
           kind: InvitationKind = DELEGATE) -> Issued:
    """A new token for a pending invitation (and a fresh expiry); the old link stops working at once."""
    email = normalise_address(email)

    def decide(subscription: Subscription) -> Plan[Issued]:
        pending = uow.subscriptions.invitation(subscription_id, kind, email)
        if pending is None:
            raise NoSuchDelegate(email)
        fresh, token = Invitation.new(email, kind, actor, settings.invitation_days, permissions=pending.permissions,
                                      former_owner=pending.former_owner,
                                      billing_email_follows=pending.billing_email_follows)
        after = AfterCommit()
        issued = _issue(settings, subscription, fresh, token, pending, after)
        audit = AuditEntry(actor, "invitation.resent", target=email, after={"kind": kind})
        return Plan(issued, _writes(subscription, audit, put=[_with_etag(fresh, pending)]), after)

    return uow.change(subscription_id, decide)


def offer_ownership(uow: UnitOfWork, settings: Settings, actor: Actor, subscription_id: str, email: str,
                    former_owner: FormerOwner, billing_email_follows: bool) -> Issued:
    """Offer ownership to `email` (a delegate or anyone in the subscription's tenant); it takes effect
    when they accept. A newer offer replaces an older one."""
    email = normalise_address(email)

    def decide(subscription: Subscription) -> Plan[Issued]:
        if normalise_address(subscription.owner_email) == email:
            raise IsOwner(email)
        pending = next((i for i in uow.subscriptions.invitations(subscription_id) if i.kind == OWNER_OFFER), None)
        offer, token = Invitation.new(email, OWNER_OFFER, actor, settings.invitation_days, former_owner=former_owner,
                                      billing_email_follows=billing_email_follows)
        after = AfterCommit()
        issued = _issue(settings, subscription, offer, token, pending, after)
        audit = AuditEntry(actor, "ownership.offered", target=email,
                           after={"former_owner": former_owner, "billing_email_follows": billing_email_follows})
        writes = _writes(subscription, audit, put=[_with_etag(offer, pending) if pending and pending.email == email
                                                   else offer])
        if pending is not None and pending.email != email:
            writes.delete.append(pending)
        return Plan(issued, writes, after)

    return uow.change(subscription_id, decide)


# --- managing --------------------------------------------------------------------------------------------


def revoke_invitation(uow: UnitOfWork, actor: Actor, subscription_id: str, email: str,
                      kind: InvitationKind = DELEGATE) -> None:
    email = normalise_address(email)

    def decide(subscription: Subscription) -> Plan[None]:
        pending = uow.subscriptions.invitation(subscription_id, kind, email)
        if pending is None:
            raise NoSuchDelegate(email)
        after = AfterCommit(invitation_lookups=[InvitationLookup(pending.token_hash, subscription_id, kind, email,
                                                                 pending.expires_at, gone=True)])
        audit = AuditEntry(actor, "invitation.revoked", target=email, after={"kind": kind})
        writes = _writes(subscription, audit)
        writes.delete.append(pending)
        return Plan(None, writes, after)

    uow.change(subscription_id, decide)


def change_permissions(uow: UnitOfWork, actor: Actor, subscription_id: str, email: str,
                       permissions: frozenset[str]) -> Delegate | Invitation:
    """New permissions for a delegate (effective on their next request) or a pending invitation."""
    email = normalise_address(email)

    def decide(subscription: Subscription) -> Plan[Delegate | Invitation]:
        delegate = _delegate_by_email(uow, subscription_id, email)
        current: Delegate | Invitation | None = delegate or uow.subscriptions.invitation(subscription_id, DELEGATE,
                                                                                           email)
        if current is None:
            raise NoSuchDelegate(email)
        changed = replace(current, permissions=permissions)
        audit = AuditEntry(actor, "delegate.permissions_changed", target=email,
                           before={"permissions": ordered(current.permissions)},
                           after={"permissions": ordered(permissions)})
        return Plan(changed, _writes(subscription, audit, put=[changed]))

    return uow.change(subscription_id, decide)


def remove(uow: UnitOfWork, actor: Actor, subscription_id: str, email: str) -> None:
    """Remove a delegate (their next request is refused), or revoke their pending invitation."""
    email = normalise_address(email)

    def decide(subscription: Subscription) -> Plan[None]:
        delegate = _delegate_by_email(uow, subscription_id, email)
        if delegate is None:
            pending = uow.subscriptions.invitation(subscription_id, DELEGATE, email)
            if pending is None:
                raise NoSuchDelegate(email)
            audit = AuditEntry(actor, "invitation.revoked", target=email, after={"kind": DELEGATE})
            writes = _writes(subscription, audit)
            writes.delete.append(pending)
            return Plan(None, writes, AfterCommit(invitation_lookups=[InvitationLookup(
                pending.token_hash, subscription_id, DELEGATE, email, pending.expires_at, gone=True)]))
        audit = AuditEntry(actor, "delegate.removed", target=email,
                           before={"permissions": ordered(delegate.permissions)})
        writes = _writes(subscription, audit)
        writes.delete.append(delegate)
        return Plan(None, writes, AfterCommit(people=[PersonRole(delegate.tid, delegate.oid, subscription_id, None)]))

    uow.change(subscription_id, decide)


def _delegate_by_email(uow: UnitOfWork, subscription_id: str, email: str) -> Delegate | None:
    return next((d for d in uow.subscriptions.delegates(subscription_id) if d.email == email), None)


# --- accepting -------------------------------------------------------------------------------------------


def accept(uow: UnitOfWork, token: str, acceptor: Acceptor, stripe: BillingContact | None = None) -> Accepted:
    """Accept the invitation `token` names as the signed-in `acceptor` (a POST, never a GET).

    The invitation row is deleted in the transaction that adds the delegate (or changes the owner),
    under the subscription's ETag: of two parallel accepts exactly one succeeds; the other finds the
    invitation gone."""
    view = describe(uow, token)
    subscription_id = view.subscription.id
    hashed = token_hash(token)

    def decide(subscription: Subscription) -> Plan[tuple[Accepted, bool]]:
        invitation = uow.subscriptions.invitation(subscription_id, view.invitation.kind, view.invitation.email)
        if invitation is None or invitation.token_hash != hashed:
            raise _unusable_not_found()
        if invitation.expired():
            raise _unusable_expired()
        if not acceptor.is_address(invitation.email):
            raise WrongAccount(invitation.email)
        if not same_tenant(acceptor.tid, subscription.tenant_id):
            raise WrongTenant()
        gone = InvitationLookup(invitation.token_hash, subscription_id, invitation.kind, invitation.email,
                                invitation.expires_at, gone=True)
        if invitation.kind == OWNER_OFFER:
            return _accept_ownership(uow, subscription, invitation, acceptor, gone)
        existing = uow.subscriptions.delegate(subscription_id, acceptor.tid, acceptor.oid)
        delegate = Delegate(acceptor.tid, acceptor.oid, invitation.email, acceptor.name,
                            invitation.permissions | (existing.permissions if existing else frozenset()),
                            datetime.now(UTC), invitation.invited_by.email or invitation.invited_by.name,
                            existing.etag if existing else None)
        audit = AuditEntry(_as_actor(acceptor), "delegate.accepted", target=invitation.email,
                           after={"permissions": ordered(delegate.permissions)})
        writes = _writes(subscription, audit, put=[delegate])
        writes.delete.append(invitation)
        after = AfterCommit(invitation_lookups=[gone],
                            people=[PersonRole(acceptor.tid, acceptor.oid, subscription_id, "delegate")])
        return Plan((Accepted(subscription, DELEGATE), False), writes, after)

    accepted, follows = uow.change(subscription_id, decide)
    if follows and stripe is not None and accepted.subscription.stripe_customer_id:
        # After the commit: Stripe's customer e-mail (where invoices go) follows the new owner, as the
        # former owner chose. A failure here leaves the ownership changed and is logged, not undone.
        try:
            stripe.update_customer_email(accepted.subscription.stripe_customer_id, accepted.subscription.owner_email)
        except Exception:
            log.exception("ownership of %s transferred; Stripe's customer e-mail could not be updated",
                          subscription_id)
    return accepted


class BillingContact(Protocol):
    def update_customer_email(self, customer_id: str, email: str) -> None: ...


def _accept_ownership(uow: UnitOfWork, subscription: Subscription, offer: Invitation, acceptor: Acceptor,
                      gone: InvitationLookup) -> Plan[tuple[Accepted, bool]]:
    if subscription.owner_oid == acceptor.oid and same_tenant(subscription.owner_tid, acceptor.tid):
        raise IsOwner(offer.email)
    now = datetime.now(UTC)
    new_owner = replace(subscription, owner_tid=acceptor.tid, owner_oid=acceptor.oid, owner_email=offer.email,
                        owner_name=acceptor.name, updated_at=now)
    audit = AuditEntry(_as_actor(acceptor), "ownership.transferred", target=offer.email,
                       before={"owner": subscription.owner_email}, after={"owner": offer.email,
                                                                          "former_owner": offer.former_owner})
    writes = _writes(new_owner, audit)
    writes.delete.append(offer)
    people = [PersonRole(acceptor.tid, acceptor.oid, subscription.id, "owner")]
    # The new owner holds everything: a delegate row of theirs is dropped.
    if (mine := uow.subscriptions.delegate(subscription.id, acceptor.tid, acceptor.oid)) is not None:
        writes.delete.append(mine)
    if offer.former_owner == "delegate":
        former = uow.subscriptions.delegate(subscription.id, subscription.owner_tid, subscription.owner_oid)
        writes.put.append(Delegate(subscription.owner_tid, subscription.owner_oid,
                                   normalise_address(subscription.owner_email), subscription.owner_name,
                                   frozenset(DELEGABLE), now, offer.email, former.etag if former else None))
        people.append(PersonRole(subscription.owner_tid, subscription.owner_oid, subscription.id, "delegate"))
    else:
        people.append(PersonRole(subscription.owner_tid, subscription.owner_oid, subscription.id, None))
    after = AfterCommit(invitation_lookups=[gone], people=people)
    return Plan((Accepted(new_owner, OWNER_OFFER), offer.billing_email_follows), writes, after)


def _as_actor(acceptor: Acceptor) -> Actor:
    return Actor(acceptor.tid, acceptor.oid, acceptor.email, acceptor.name)


# --- housekeeping ----------------------------------------------------------------------------------------


def purge_expired(uow: UnitOfWork, now: datetime | None = None) -> int:
    """Delete expired invitations (the timer); returns how many."""
    now = now or datetime.now(UTC)
    removed = 0
    for lookup in uow.lookups.expired_invitations(now):

        def decide(subscription: Subscription, lookup: InvitationLookup = lookup) -> Plan[int]:
            pending = uow.subscriptions.invitation(subscription.id, lookup.kind, lookup.email)
            after = AfterCommit(invitation_lookups=[replace(lookup, gone=True)])
            if pending is None or pending.token_hash != lookup.token_hash or not pending.expired(now):
                return Plan(0, after=after)  # used, replaced or renewed meanwhile: only the lookup row goes
            writes = _writes(subscription, AuditEntry(Actor.system("expiry"), "invitation.expired",
                                                      target=pending.email, after={"kind": pending.kind}))
            writes.delete.append(pending)
            return Plan(1, writes, after)

        try:
            removed += uow.change(lookup.subscription_id, decide)
        except Refused:
            uow.lookups.delete_invitation(lookup.token_hash)  # its subscription is gone
    return removed


# --- plumbing --------------------------------------------------------------------------------------------


def _with_etag(row: Invitation, existing: Invitation | None) -> Invitation:
    """`row` replacing `existing` (same key) under its ETag, or created when there is none."""
    return replace(row, etag=existing.etag if existing is not None else None)


def _writes(subscription: Subscription, audit: AuditEntry, put: list[Delegate | Invitation] | None = None
            ) -> PartitionWrites:
    """The subscription (its ETag guards the change), the audit entry and the rows to write."""
    touched = replace(subscription, updated_at=datetime.now(UTC))
    create: list[PartitionRow] = [audit]
    return PartitionWrites(touched, create=create, put=list(put or []))
