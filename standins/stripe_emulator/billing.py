"""Subscription and invoice state transitions, each emitting the events Stripe would.

Event order follows what Stripe sends for the same situation, e.g. for a paid first
invoice: customer.subscription.created, invoice.created, invoice.finalized, invoice.paid,
invoice.payment_succeeded, then customer.subscription.updated when the status changes.
"""

import copy

from . import objects
from .errors import StripeError
from .forms import as_bool, as_int, as_list, as_metadata
from .periods import add_interval
from .pricing import amount_for, format_money, unit_amount_for

ENDED = ("canceled", "incomplete_expired")


def create_customer(ctx, **fields):
    record = ctx.store.add("customer", objects.customer(ctx.store, **fields))
    ctx.events.emit("customer.created", record)
    return record


def items_of(ctx, sub):
    return [ctx.store.get("subscription_item", i) for i in sub["_items"]]


def _describe(ctx, price, quantity):
    product = ctx.store.get("product", price["product"]) or {"name": price["product"]}
    interval = (price.get("recurring") or {}).get("interval", "month")
    unit = format_money(unit_amount_for(price, quantity), price["currency"])
    return f"{quantity} × {product['name']} (at {unit} / {interval})"


def _period_lines(ctx, sub, *, trial=False):
    lines = []
    for item in items_of(ctx, sub):
        price = ctx.store.get("price", item["price"])
        product = ctx.store.get("product", price["product"]) or {"name": price["product"]}
        lines.append(objects.invoice_line(
            subscription_id=sub["id"], item_record=item, price_record=price,
            quantity=item["quantity"],
            amount=0 if trial else amount_for(price, item["quantity"]),
            description=(f"Trial period for {product['name']}" if trial
                         else _describe(ctx, price, item["quantity"])),
            period_start=item["current_period_start"], period_end=item["current_period_end"]))
    return lines


def _new_invoice(ctx, sub, billing_reason, lines):
    customer = ctx.store.require("customer", sub["customer"])
    items = items_of(ctx, sub)
    start = items[0]["current_period_start"] if items else ctx.store.now()
    end = items[0]["current_period_end"] if items else start
    invoice = objects.invoice(ctx.store, customer_record=customer, subscription_record=sub,
                              billing_reason=billing_reason, lines=lines, period_start=start,
                              period_end=end, base_url=ctx.base_url)
    ctx.store.add("invoice", invoice)
    sub["latest_invoice"] = invoice["id"]
    return invoice


def _finalize(ctx, invoice):
    now = ctx.store.now()
    invoice.update(status="open", effective_at=now, due_date=None,
                   next_payment_attempt=now + 3600 if invoice["amount_due"] else None)
    invoice["status_transitions"]["finalized_at"] = now
    ctx.events.emit("invoice.created", invoice)
    ctx.events.emit("invoice.finalized", invoice)


def pay_invoice(ctx, invoice):
    now = ctx.store.now()
    invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0,
                   attempted=True, attempt_count=invoice["attempt_count"] + (
                       1 if invoice["amount_due"] else 0),
                   next_payment_attempt=None, webhooks_delivered_at=now)
    invoice["status_transitions"]["paid_at"] = now
    ctx.events.emit("invoice.paid", invoice)
    ctx.events.emit("invoice.payment_succeeded", invoice)


def fail_invoice(ctx, invoice):
    now = ctx.store.now()
    invoice.update(attempted=True, attempt_count=invoice["attempt_count"] + 1,
                   next_payment_attempt=now + 3 * 86400)
    ctx.events.emit("invoice.payment_failed", invoice)


def set_status(ctx, sub, status, **changes):
    """Change a subscription and emit customer.subscription.updated with previous_attributes."""
    before = ctx.events.snapshot(sub)
    sub["status"] = status
    sub.update(changes)
    ctx.events.emit("customer.subscription.updated", sub, previous=before)


def create_subscription(ctx, *, customer, items, metadata, trial_period_days=None,
                        payment="charge", description=None):
    """Start a subscription and its first invoice.

    payment: "charge" (card on file succeeds), "checkout" (Checkout confirms the payment:
    created incomplete, then updated to active), "processing" (delayed method: the invoice
    stays open until settled) or "incomplete" (payment_behavior=default_incomplete).
    """
    store = ctx.store
    now = store.now()
    first_price = items[0][0]
    currency = first_price["currency"]
    trial_end = now + trial_period_days * 86400 if trial_period_days else None
    status = "trialing" if trial_end else ("active" if payment == "charge" else "incomplete")
    sub = objects.subscription(store, customer_id=customer["id"], currency=currency,
                               status=status, metadata=metadata,
                               trial_start=now if trial_end else None, trial_end=trial_end,
                               description=description)
    for price, quantity, item_metadata in items:
        recurring = price.get("recurring") or {}
        period_end = trial_end or add_interval(now, recurring.get("interval", "month"),
                                               recurring.get("interval_count", 1))
        item = objects.subscription_item(store, subscription_id=sub["id"], price_id=price["id"],
                                         quantity=quantity, period_start=now,
                                         period_end=period_end, metadata=item_metadata)
        store.add("subscription_item", item)
        sub["_items"].append(item["id"])
    store.add("subscription", sub)
    invoice = _new_invoice(ctx, sub, "subscription_create", _period_lines(ctx, sub,
                                                                          trial=bool(trial_end)))
    ctx.events.emit("customer.subscription.created", sub)
    _finalize(ctx, invoice)
    if trial_end or payment in ("charge", "checkout"):
        pay_invoice(ctx, invoice)
        if sub["status"] == "incomplete":
            set_status(ctx, sub, "active")
    return sub


def settle_first_invoice(ctx, sub, succeeded):
    """A delayed first payment (SEPA debit) succeeded or failed."""
    invoice = ctx.store.require("invoice", sub["latest_invoice"])
    if succeeded:
        pay_invoice(ctx, invoice)
        set_status(ctx, sub, "active")
    else:
        fail_invoice(ctx, invoice)
        cancel(ctx, sub, status="incomplete_expired", reason="payment_failed")


def renew(ctx, sub, *, succeeded=True):
    """The billing period rolled over: advance periods, invoice, charge (or fail to)."""
    if sub["status"] in ENDED:
        raise StripeError(400, "This subscription is no longer active.", param="subscription")
    before = ctx.events.snapshot(sub)
    for item in items_of(ctx, sub):
        price = ctx.store.get("price", item["price"])
        recurring = price.get("recurring") or {}
        start = item["current_period_end"]
        item["current_period_start"] = start
        item["current_period_end"] = add_interval(start, recurring.get("interval", "month"),
                                                  recurring.get("interval_count", 1))
    lines = sub["_pending_prorations"] + _period_lines(ctx, sub)
    sub["_pending_prorations"] = []
    invoice = _new_invoice(ctx, sub, "subscription_cycle", lines)
    for line in lines:
        line["invoice"] = invoice["id"]
    _finalize(ctx, invoice)
    if succeeded:
        pay_invoice(ctx, invoice)
        status = "active"
    else:
        fail_invoice(ctx, invoice)
        status = "past_due"
    if sub["trial_end"] and sub["status"] == "trialing":
        sub["trial_end"] = min(sub["trial_end"], ctx.store.now())
    sub["status"] = status
    ctx.events.emit("customer.subscription.updated", sub, previous=before)
    return invoice


def open_invoice(ctx, sub):
    invoice = ctx.store.get("invoice", sub.get("latest_invoice"))
    return invoice if invoice and invoice["status"] == "open" else None


def cancel(ctx, sub, *, status="canceled", reason="cancellation_requested"):
    if sub["status"] in ENDED:
        raise StripeError(400, "A canceled subscription can only update its cancellation_details "
                               "and metadata.", code="resource_missing", param="subscription")
    now = ctx.store.now()
    sub.update(status=status, canceled_at=now, ended_at=now)
    sub["cancellation_details"]["reason"] = reason
    ctx.events.emit("customer.subscription.deleted", sub)


def update_subscription(ctx, sub, params):
    """POST /v1/subscriptions/{id}: quantity/price changes, cancel_at_period_end, metadata."""
    if sub["status"] in ENDED and set(params) - {"metadata", "cancellation_details", "expand"}:
        raise StripeError(400, "A canceled subscription can only update its cancellation_details "
                               "and metadata.", param="subscription")
    before = ctx.events.snapshot(sub)
    behavior = params.get("proration_behavior", "create_prorations")
    if behavior not in ("create_prorations", "always_invoice", "none"):
        raise StripeError(400, f"Invalid proration_behavior: {behavior}",
                          param="proration_behavior", code="parameter_invalid")
    proration_date = as_int(params, "proration_date", ctx.store.now())
    prorations = []
    for index, change in enumerate(as_list(params.get("items"))):
        prorations += _apply_item_change(ctx, sub, change, f"items[{index}]", behavior,
                                         proration_date)
    if "cancel_at_period_end" in params:
        at_end = as_bool(params, "cancel_at_period_end")
        items = items_of(ctx, sub)
        sub["cancel_at_period_end"] = at_end
        sub["cancel_at"] = items[0]["current_period_end"] if at_end and items else None
        sub["canceled_at"] = ctx.store.now() if at_end else None
        sub["cancellation_details"]["reason"] = "cancellation_requested" if at_end else None
    if "metadata" in params:
        sub["metadata"] = as_metadata(params, current=sub["metadata"])
    if "description" in params:
        sub["description"] = params["description"] or None
    if "default_payment_method" in params:
        sub["default_payment_method"] = params["default_payment_method"] or None
    if behavior == "always_invoice" and prorations:
        invoice = _new_invoice(ctx, sub, "subscription_update",
                               sub["_pending_prorations"] + prorations)
        sub["_pending_prorations"] = []
        _finalize(ctx, invoice)
        pay_invoice(ctx, invoice)
    elif behavior == "create_prorations":
        sub["_pending_prorations"] += prorations
    ctx.events.emit("customer.subscription.updated", sub, previous=before)
    return sub


def _apply_item_change(ctx, sub, change, param, behavior, proration_date):
    store = ctx.store
    item = None
    if change.get("id"):
        item = store.require("subscription_item", change["id"], param=f"{param}[id]")
        if item["subscription"] != sub["id"]:
            raise StripeError(400, f"Subscription item {item['id']} does not belong to this "
                                   f"subscription.", param=f"{param}[id]")
    if item is not None and as_bool(change, "deleted", False):
        sub["_items"].remove(item["id"])
        return _prorate(ctx, sub, item, store.get("price", item["price"]), item["quantity"],
                        None, 0, behavior, proration_date)
    if item is None:
        price = store.require("price", change.get("price"), param=f"{param}[price]")
        items = items_of(ctx, sub)
        start = items[0]["current_period_start"] if items else store.now()
        end = items[0]["current_period_end"] if items else store.now()
        item = objects.subscription_item(store, subscription_id=sub["id"], price_id=price["id"],
                                         quantity=as_int(change, "quantity", 1, minimum=0),
                                         period_start=start, period_end=end,
                                         metadata=as_metadata(change))
        store.add("subscription_item", item)
        sub["_items"].append(item["id"])
        return _prorate(ctx, sub, item, None, 0, price, item["quantity"], behavior,
                        proration_date)
    old_price, old_quantity = store.get("price", item["price"]), item["quantity"]
    if change.get("price"):
        item["price"] = store.require("price", change["price"], param=f"{param}[price]")["id"]
    item["quantity"] = as_int(change, "quantity", item["quantity"], minimum=0)
    item["metadata"] = as_metadata(change, current=item["metadata"])
    return _prorate(ctx, sub, item, old_price, old_quantity, store.get("price", item["price"]),
                    item["quantity"], behavior, proration_date)


def _prorate(ctx, sub, item, old_price, old_quantity, new_price, new_quantity, behavior,
             proration_date):
    """Credit unused time at the old amount and charge remaining time at the new one."""
    if behavior == "none" or sub["status"] == "trialing":
        return []
    old = amount_for(old_price, old_quantity) if old_price else 0
    new = amount_for(new_price, new_quantity) if new_price else 0
    if old == new:
        return []
    start, end = item["current_period_start"], item["current_period_end"]
    fraction = max(0.0, min(1.0, (end - proration_date) / max(end - start, 1)))
    lines = []
    if old_price and old:
        lines.append(objects.invoice_line(
            subscription_id=sub["id"], item_record=item, price_record=old_price,
            quantity=old_quantity, amount=-round(old * fraction),
            description=f"Unused time on {_describe(ctx, old_price, old_quantity)}",
            period_start=proration_date, period_end=end, proration=True))
    if new_price and new:
        lines.append(objects.invoice_line(
            subscription_id=sub["id"], item_record=item, price_record=new_price,
            quantity=new_quantity, amount=round(new * fraction),
            description=f"Remaining time on {_describe(ctx, new_price, new_quantity)}",
            period_start=proration_date, period_end=end, proration=True))
    return lines


def preview_invoice(ctx, sub, params):
    """Invoice.create_preview for a subscription change: prorations now plus next period.

    Nothing is stored (Stripe keeps no preview), so the change is applied to copies.
    """
    details = params.get("subscription_details") or {}
    behavior = details.get("proration_behavior", "create_prorations")
    proration_date = as_int(details, "proration_date", ctx.store.now())
    shadow_sub = copy.deepcopy(sub)
    saved = {k: copy.deepcopy(v) for k, v in ctx.store.objects.get("subscription_item", {}).items()
             if k in sub["_items"]}
    saved_sequence = ctx.store.sequence
    try:
        prorations = []
        for index, change in enumerate(as_list(details.get("items"))):
            prorations += _apply_item_change(ctx, shadow_sub, change,
                                             f"subscription_details[items][{index}]", behavior,
                                             proration_date)
        lines = list(shadow_sub["_pending_prorations"]) + prorations
        if behavior != "always_invoice":
            for item in items_of(ctx, shadow_sub):
                price = ctx.store.get("price", item["price"])
                recurring = price.get("recurring") or {}
                start = item["current_period_end"]
                end = add_interval(start, recurring.get("interval", "month"),
                                   recurring.get("interval_count", 1))
                lines.append(objects.invoice_line(
                    subscription_id=sub["id"], item_record=item, price_record=price,
                    quantity=item["quantity"], amount=amount_for(price, item["quantity"]),
                    description=_describe(ctx, price, item["quantity"]),
                    period_start=start, period_end=end))
        customer = copy.deepcopy(ctx.store.require("customer", sub["customer"]))
        invoice = objects.invoice(ctx.store, customer_record=customer,
                                  subscription_record=shadow_sub, billing_reason="upcoming",
                                  lines=lines, period_start=proration_date,
                                  period_end=proration_date, base_url=ctx.base_url)
    finally:
        # Undo the shadow changes: restore items and drop any item created for the preview.
        items = ctx.store.objects.setdefault("subscription_item", {})
        for key in [k for k, v in items.items() if v["_seq"] > saved_sequence]:
            del items[key]
        items.update(saved)
        ctx.store.sequence = saved_sequence
    invoice.update(id="upcoming_" + invoice["id"], number=None, hosted_invoice_url=None,
                   invoice_pdf=None)
    for line in invoice["_lines"]:
        line["invoice"] = invoice["id"]
    return invoice
