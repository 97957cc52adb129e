"""invoice.upcoming: Stripe's renewal notice, sent some days before a subscription renews.

Stripe sends it ``upcoming_invoice_days`` before renewal (a Billing setting; 30 here) for
subscriptions billed yearly, once per period. Its ``data.object`` is the invoice the renewal
will create, as a preview: no ``id`` and no number, ``billing_reason`` ``upcoming``, the lines
of the next period (after any pending prorations), the totals with tax, ``period_end`` = the
renewal date, ``parent.subscription_details.subscription`` = the subscription, and
``next_payment_attempt`` = when the card will be charged (null for sent invoices).
"""

from . import billing
from .errors import StripeError

DAY = 86400


def yearly(ctx, sub):
    return any((ctx.store.get("price", item["price"]).get("recurring") or {}).get("interval")
               == "year" for item in billing.items_of(ctx, sub))


def renewal_at(ctx, sub):
    items = billing.items_of(ctx, sub)
    return items[0]["current_period_end"] if items else None


def notice_at(ctx, sub):
    """When this period's notice is due, or None (not yearly, ending, or already sent)."""
    renewal = renewal_at(ctx, sub)
    if (renewal is None or not yearly(ctx, sub) or sub["status"] in billing.ENDED
            or sub["cancel_at_period_end"] or sub.get("_upcoming_sent_for") == renewal):
        return None
    return renewal - ctx.settings.upcoming_invoice_days * DAY


def preview(ctx, sub):
    """The renewal invoice as Stripe previews it in invoice.upcoming (rendered, without id)."""
    invoice = billing.preview_invoice(ctx, sub, {})
    rendered = ctx.events.snapshot(invoice)
    rendered.pop("id", None)
    for line in rendered["lines"]["data"]:
        line["invoice"] = None
    rendered["lines"]["url"] = "/v1/invoices/upcoming/lines"
    renewal = renewal_at(ctx, sub)
    rendered["next_payment_attempt"] = (
        renewal if rendered["collection_method"] == "charge_automatically" else None)
    rendered["automatically_finalizes_at"] = renewal
    return rendered


def notify(ctx, sub):
    """Emit invoice.upcoming for the subscription's next renewal (once per period)."""
    if sub["status"] in billing.ENDED:
        raise StripeError(400, "This subscription has ended: it has no upcoming invoice.",
                          code="invoice_upcoming_none", param="subscription")
    sub["_upcoming_sent_for"] = renewal_at(ctx, sub)
    return ctx.events.emit("invoice.upcoming", sub, current=preview(ctx, sub))
