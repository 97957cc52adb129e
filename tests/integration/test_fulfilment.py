"""Purchase fulfilment and Stripe events against the emulator, through the real SDK and queue."""

import concurrent.futures

from adapters.stripe_gateway import StripeGateway
from services import subscription_store
from services.fulfilment import Outcome, fulfil
from services.subscription import LicenseState
from tests.builders import checkout, pay, person, purchased_subscription
from tests.conftest import wait_for


def test_purchase_creates_one_subscription_for_the_buyer(stack):
    buyer = person("admin@contoso.example")
    subscription = purchased_subscription(stack, buyer, quantity=12)
    assert subscription.quantity == 12
    assert subscription.status == "active"
    assert (subscription.owner_tid, subscription.owner_oid) == (buyer.tid, buyer.oid)
    assert subscription.license_state(14) is LicenseState.ACTIVE
    assert [s.id for s, role in subscription_store.for_user(stack.storage(), buyer.tid, buyer.oid)] == [subscription.id]


def test_redirect_and_webhook_in_any_order_twice_and_concurrently_give_one_subscription(stack):
    buyer = person("race@contoso.example")
    session_id = checkout(stack, buyer, quantity=3)
    pay(stack, session_id)
    gateway = StripeGateway(stack.settings)

    def run(_):
        return fulfil(session_id, storage=stack.storage(), stripe=gateway, buyer=(buyer.tid, buyer.oid))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(8)))
    assert {r.outcome for r in results} == {Outcome.FULFILLED}
    assert len({r.subscription.id for r in results}) == 1
    assert sum(r.created for r in results) <= 1
    # ...and the webhook (delivered by the emulator to the running app) finds the same one.
    owned = wait_for(lambda: subscription_store.for_user(stack.storage(), buyer.tid, buyer.oid), message="indexed")
    assert len(owned) == 1


def test_a_foreign_buyer_cannot_complete_someone_elses_session(stack):
    buyer, other = person("owner@contoso.example"), person("eve@fabrikam.example")
    session_id = checkout(stack, buyer)
    pay(stack, session_id)
    result = fulfil(session_id, storage=stack.storage(), stripe=StripeGateway(stack.settings),
                    buyer=(other.tid, other.oid))
    assert result.outcome is Outcome.FOREIGN and result.subscription is None


def test_unpaid_and_unknown_sessions_are_not_fulfilled(stack):
    buyer = person("unpaid@contoso.example")
    session_id = checkout(stack, buyer)
    gateway = StripeGateway(stack.settings)
    assert fulfil(session_id, storage=stack.storage(), stripe=gateway).outcome is Outcome.NOT_COMPLETE
    assert fulfil("cs_test_doesnotexist", storage=stack.storage(), stripe=gateway).outcome is Outcome.UNKNOWN
    assert fulfil("../etc/passwd", storage=stack.storage(), stripe=gateway).outcome is Outcome.UNKNOWN


def test_individual_purchase_assigns_the_buyers_own_license(stack):
    buyer = person("solo@contoso.example")
    subscription = purchased_subscription(stack, buyer, kind="individual", quantity=7)
    assert subscription.kind == "individual" and subscription.quantity == 1 and subscription.assigned_count == 1
    seat = stack.storage().get("Subscriptions", subscription.id, "seat|solo@contoso.example")
    assert seat["BoundOid"] == buyer.oid
    lookup = stack.storage().get("UserLicenses", f"oid|{buyer.oid}", subscription.id)
    assert lookup["TenantId"] == buyer.tid
