"""The account's clock: what happens on its own when time passes (POST /_emulator/clock/advance).

For each subscription, the due things happen in time order, as they would have one by one:

- ``customer.subscription.trial_will_end`` three days before a trial ends;
- ``invoice.upcoming`` ``upcoming_invoice_days`` before a yearly subscription renews (upcoming.py);
- ``invoice.overdue`` when a sent invoice is still open after its due date; the subscription
  then goes ``past_due``;
- the period end: cancellation (``cancel_at_period_end``/``cancel_at``) or renewal, charged
  to the customer's card as it is or sent as an invoice. A subscription that is ``past_due``,
  ``unpaid`` or ``incomplete`` does not renew here; its dunning is driven by control calls.

Checkout sessions past ``expires_at`` expire.
"""

from collections.abc import Callable
from functools import partial

from . import billing, checkout, upcoming

TRIAL_NOTICE_SECONDS = 3 * 86400
_DUNNING = ("past_due", "unpaid", "incomplete")


def advance(ctx, seconds):
    store = ctx.store
    store.clock_offset += seconds
    now = store.now()
    for session in store.all("checkout.session"):
        if session["status"] == "open" and session["expires_at"] <= now:
            checkout.expire(ctx, session)
    for sub in reversed(store.all("subscription")):
        catch_up(ctx, sub, now)
    return now


def catch_up(ctx, sub, now):
    while sub["status"] not in billing.ENDED:
        due = [(when, order, action) for when, order, action in _pending(ctx, sub)
               if when is not None and when <= now]
        if not due:
            return
        _when, _order, action = min(due, key=lambda entry: entry[:2])
        action()


def _pending(ctx, sub):
    """(time, tie-break order, action) for everything this subscription has coming."""
    items = billing.items_of(ctx, sub)
    if not items:
        return []
    pending: list[tuple[int | None, int, Callable[[], object]]] = []
    if (sub["status"] == "trialing" and sub["trial_end"]
            and not sub.get("_trial_will_end_sent")):
        pending.append((sub["trial_end"] - TRIAL_NOTICE_SECONDS, 0,
                        lambda: _trial_will_end(ctx, sub)))
    pending.append((upcoming.notice_at(ctx, sub), 1, lambda: upcoming.notify(ctx, sub)))
    for invoice in ctx.store.all("invoice"):
        if (billing.subscription_of(invoice) == sub["id"] and invoice["status"] == "open"
                and invoice["due_date"] and not invoice.get("_overdue")):
            # Overdue once the due date has passed (the invoice is due *on* that date).
            pending.append((invoice["due_date"] + 1, 2, partial(billing.mark_overdue, ctx, invoice)))
    if sub["status"] not in _DUNNING:
        period_end = items[0]["current_period_end"]
        if sub["cancel_at"] and sub["cancel_at"] < period_end:
            pending.append((sub["cancel_at"], 3, lambda: billing.cancel(ctx, sub,
                                                                        at=sub["cancel_at"])))
        pending.append((period_end, 3, lambda: _period_end(ctx, sub, period_end)))
    return pending


def _trial_will_end(ctx, sub):
    sub["_trial_will_end_sent"] = True
    ctx.events.emit("customer.subscription.trial_will_end", sub)


def _period_end(ctx, sub, period_end):
    if sub["cancel_at_period_end"] or (sub["cancel_at"] and sub["cancel_at"] <= period_end):
        # Ends at the period end (or cancel_at); canceled_at keeps the request time.
        billing.cancel(ctx, sub, at=sub["cancel_at"] or period_end)
        return
    billing.renew(ctx, sub, succeeded=None)  # the customer's card decides
