"""Subscription and invoice state transitions, each emitting the events Stripe would.

Event order follows what Stripe sends for the same situation, e.g. for a paid first
invoice: customer.subscription.created, invoice.created, invoice.finalized, invoice.paid,
invoice.payment_succeeded, then customer.subscription.updated when the status changes.

Quantity changes (``POST /v1/subscriptions/{id}`` with ``items``, or
``POST /v1/subscription_items/{id}``) prorate from the item's current period:

    credit = -prorate(amount_for(old price, old quantity), period_end - proration_date, period)
    charge =  prorate(amount_for(new price, new quantity), period_end - proration_date, period)

``amount_for`` is the whole quantity's total under the price's scheme (volume tiers: every
unit at the tier the quantity falls in), ``prorate`` is exact integer arithmetic rounded to
the nearest cent, halves away from zero (see pricing.py). ``proration_behavior`` decides
where those lines go: ``create_prorations`` keeps them as pending invoice items for the next
invoice, ``always_invoice`` bills them (with any pending ones) on an invoice that is finalized
and charged at once, ``none`` drops them. ``payment_behavior`` decides what a declined charge
of that invoice does (see ``update_subscription``).

A price change to another billing interval (monthly <-> yearly) works as in Stripe: the
billing cycle restarts now (``billing_cycle_anchor``) and is invoiced at once, the new period
in full plus, unless ``proration_behavior=none``, a credit for the unused time on the old
price. Invoices of subscriptions with ``automatic_tax`` carry tax (tax.py); sent invoices
(``collection_method=send_invoice``) are finalized, mailed and left open until paid.
"""

import copy
from datetime import UTC, datetime

from . import collection, objects, tax
from .errors import StripeError
from .forms import as_bool, as_int, as_list, as_metadata
from .periods import add_interval
from .pricing import amount_for, format_money, prorate, unit_amount_for

ENDED = ("canceled", "incomplete_expired")
PRORATION_BEHAVIORS = ("create_prorations", "always_invoice", "none")
UPDATE_PAYMENT_BEHAVIORS = ("allow_incomplete", "error_if_incomplete", "pending_if_incomplete",
                            "default_incomplete")
# Only these may accompany payment_behavior=pending_if_incomplete (as in Stripe).
PENDING_UPDATE_PARAMS = {"items", "proration_behavior", "proration_date", "payment_behavior",
                         "expand", "billing_cycle_anchor", "trial_end", "trial_from_plan",
                         "add_invoice_items"}
DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "lost_card": "Your card was declined.",
}


def items_of(ctx, sub):
    return [ctx.store.get("subscription_item", i) for i in sub["_items"]]


def _describe(ctx, price, quantity):
    product = ctx.store.get("product", price["product"]) or {"name": price["product"]}
    interval = (price.get("recurring") or {}).get("interval", "month")
    unit = format_money(unit_amount_for(price, quantity), price["currency"])
    return f"{quantity} × {product['name']} (at {unit} / {interval})"


def _product_name(ctx, price):
    return (ctx.store.get("product", price["product"]) or {"name": price["product"]})["name"]


def _period_lines(ctx, sub, *, trial=False):
    lines = []
    for item in items_of(ctx, sub):
        price = ctx.store.get("price", item["price"])
        lines.append(objects.invoice_line(
            subscription_id=sub["id"], item_record=item, price_record=price,
            quantity=item["quantity"],
            amount=0 if trial else amount_for(price, item["quantity"]),
            description=(f"Trial period for {_product_name(ctx, price)}" if trial
                         else _describe(ctx, price, item["quantity"])),
            period_start=item["current_period_start"], period_end=item["current_period_end"]))
    return lines


def build_invoice(ctx, sub, billing_reason, lines, customer=None, period=None):
    """A draft invoice for ``sub`` (not stored), with automatic tax when the subscription has it."""
    customer = customer or ctx.store.require("customer", sub["customer"])
    items = items_of(ctx, sub)
    if period is None:
        start = items[0]["current_period_start"] if items else ctx.store.now()
        period = (start, items[0]["current_period_end"] if items else start)
    invoice = objects.invoice(ctx.store, customer_record=customer, subscription_record=sub,
                              billing_reason=billing_reason, lines=lines, period_start=period[0],
                              period_end=period[1], base_url=ctx.base_url,
                              account_name=ctx.settings.account_name,
                              account_country=ctx.settings.seller_country)
    return tax.apply(ctx.store, ctx.settings, invoice, customer, sub["automatic_tax"]["enabled"])


def _new_invoice(ctx, sub, billing_reason, lines):
    invoice = ctx.store.add("invoice", build_invoice(ctx, sub, billing_reason, lines))
    sub["latest_invoice"] = invoice["id"]
    return invoice


def _finalize(ctx, invoice):
    """Draft -> open: invoice.created (as a draft), then invoice.finalized.

    The customer's billing details are copied onto the invoice here (name, address, tax IDs,
    invoice custom fields such as a purchase-order number), as Stripe does at finalization.
    The customer's credit balance (negative ``customer.balance``) is applied too; an invoice
    whose total is negative (a decrease billed at once) leaves its amount as new credit on the
    customer. An invoice sent for payment (``collection_method=send_invoice``) gets its due
    date and goes out by mail (``invoice.sent``) instead of being charged.
    """
    ctx.events.emit("invoice.created", invoice)
    now = ctx.store.now()
    customer = ctx.store.get("customer", invoice["customer"])
    if customer:
        _snapshot_customer(ctx, invoice, customer)
    starting = customer["balance"] if customer else 0
    after = starting + invoice["total"]
    sending = invoice["collection_method"] == "send_invoice"
    sub = ctx.store.get("subscription", subscription_of(invoice))
    days = (sub or {}).get("days_until_due")
    days = 30 if days is None else days
    invoice.update(status="open", effective_at=now,
                   due_date=now + days * 86400 if sending else None,
                   starting_balance=starting, ending_balance=min(after, 0),
                   amount_due=max(after, 0), amount_remaining=max(after, 0),
                   next_payment_attempt=now + 3600 if after > 0 and not sending else None)
    invoice["status_transitions"]["finalized_at"] = now
    if customer:
        customer["balance"] = min(after, 0)
    ctx.events.emit("invoice.finalized", invoice)
    if sending and invoice["amount_due"] > 0:
        invoice["_sent"] = True
        ctx.events.emit("invoice.sent", invoice)


def _snapshot_customer(ctx, invoice, customer):
    invoice.update(
        customer_name=customer["name"], customer_email=customer["email"],
        customer_address=copy.deepcopy(customer["address"]),
        customer_tax_exempt=customer["tax_exempt"],
        customer_tax_ids=[{"type": record["type"], "value": record["value"]}
                          for record in tax.ids_of(ctx.store, customer)],
        custom_fields=copy.deepcopy(customer["invoice_settings"]["custom_fields"]))


def subscription_of(invoice):
    return ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")


def mark_overdue(ctx, invoice):
    """A sent invoice's due date passed unpaid: invoice.overdue, and its subscription goes
    past_due (Stripe's "mark the subscription as past due" setting for sent invoices)."""
    invoice["_overdue"] = True
    ctx.events.emit("invoice.overdue", invoice)
    sub = ctx.store.get("subscription", subscription_of(invoice))
    if sub and sub["status"] in ("active", "trialing"):
        set_status(ctx, sub, "past_due")


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


def card_declines(ctx, customer_id):
    """The decline code the customer's card answers with, or None when it pays.

    Set through ``POST /_emulator/customers/{id}/card`` (a card that is declined until
    changed), the way a test card like ``pm_card_chargeCustomerFail`` behaves in Stripe.
    """
    customer = ctx.store.get("customer", customer_id)
    return (customer or {}).get("_decline_code")


def collect(ctx, invoice):
    """Charge an open invoice to the customer's card. Returns the decline code, or None if paid."""
    if invoice["amount_due"] <= 0:
        pay_invoice(ctx, invoice)
        return None
    decline = card_declines(ctx, invoice["customer"])
    if decline:
        fail_invoice(ctx, invoice)
        return decline
    pay_invoice(ctx, invoice)
    return None


def card_error(decline_code):
    return StripeError(402, DECLINE_MESSAGES.get(decline_code, "Your card was declined."),
                       type="card_error", code="card_declined", decline_code=decline_code)


def set_status(ctx, sub, status, **changes):
    """Change a subscription and emit customer.subscription.updated with previous_attributes."""
    before = ctx.events.snapshot(sub)
    sub["status"] = status
    sub.update(changes)
    ctx.events.emit("customer.subscription.updated", sub, previous=before)


def create_subscription(ctx, *, customer, items, metadata, trial_period_days=None,
                        payment="charge", description=None, automatic_tax=False,
                        collection=None):
    """Start a subscription and its first invoice.

    payment: "charge" (card on file succeeds), "checkout" (Checkout confirms the payment:
    created incomplete, then updated to active), "processing" (delayed method: the invoice
    stays open until settled), "incomplete" (payment_behavior=default_incomplete) or
    "send_invoice" (active at once; the invoice is sent, due in ``days_until_due`` days).
    ``collection``: the subscription's collection fields (collection.py).
    """
    store = ctx.store
    now = store.now()
    first_price = items[0][0]
    currency = first_price["currency"]
    trial_end = now + trial_period_days * 86400 if trial_period_days else None
    status = "trialing" if trial_end else (
        "active" if payment in ("charge", "send_invoice") else "incomplete")
    sub = objects.subscription(store, customer_id=customer["id"], currency=currency,
                               status=status, metadata=metadata,
                               trial_start=now if trial_end else None, trial_end=trial_end,
                               description=description, automatic_tax=automatic_tax,
                               **(collection or {}))
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
    if trial_end or payment in ("charge", "checkout") or invoice["amount_due"] <= 0:
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
    """The billing period rolled over: advance periods, invoice, charge (or fail to).

    ``succeeded=None`` charges the customer's card as it is (declines if it was set to).
    """
    if sub["status"] in ENDED:
        raise StripeError(400, "This subscription is no longer active.", param="subscription")
    before = ctx.events.snapshot(sub)
    from . import schedules  # builds on this module

    # A schedule whose phase ends now changes the items first (or ends the subscription).
    if schedules.enter_next_phase(ctx, sub, items_of(ctx, sub)[0]["current_period_end"]) == "canceled":
        return None
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
    _finalize(ctx, invoice)
    if invoice["collection_method"] == "send_invoice":
        # Sent, not charged: the subscription stays as it is until the due date passes.
        if invoice["amount_due"] <= 0:
            pay_invoice(ctx, invoice)
        if sub["trial_end"] and sub["status"] == "trialing":
            sub["trial_end"] = min(sub["trial_end"], ctx.store.now())
            sub["status"] = "active"
        ctx.events.emit("customer.subscription.updated", sub, previous=before)
        return invoice
    if succeeded is None:
        paid = collect(ctx, invoice) is None
    elif succeeded:
        pay_invoice(ctx, invoice)
        paid = True
    else:
        fail_invoice(ctx, invoice)
        paid = False
    if sub["trial_end"] and sub["status"] == "trialing":
        sub["trial_end"] = min(sub["trial_end"], ctx.store.now())
    sub["status"] = "active" if paid else "past_due"
    ctx.events.emit("customer.subscription.updated", sub, previous=before)
    return invoice


def open_invoice(ctx, sub):
    invoice = ctx.store.get("invoice", sub.get("latest_invoice"))
    return invoice if invoice and invoice["status"] == "open" else None


def invoice_settled(ctx, invoice):
    """After an open subscription invoice was paid: a pending update takes effect, and a
    subscription waiting on this payment is active again."""
    sub = ctx.store.get("subscription", subscription_of(invoice))
    if sub is None or sub["status"] in ENDED:
        return
    before = ctx.events.snapshot(sub)
    changed = False
    pending = sub.get("_pending_update")
    if pending and pending["invoice"] == invoice["id"]:
        _restore_items(ctx, sub, pending["items"], pending["records"])
        sub["pending_update"] = None
        sub["_pending_update"] = None
        changed = True
    if sub["status"] in ("past_due", "unpaid", "incomplete") and not _still_unpaid(ctx, sub):
        sub["status"] = "active"
        changed = True
    if changed:
        ctx.events.emit("customer.subscription.updated", sub, previous=before)


def _still_unpaid(ctx, sub):
    """Whether an invoice still holds the subscription back: its latest invoice open after a
    failed charge, or any sent invoice of it that is open past its due date."""
    latest = open_invoice(ctx, sub)
    if latest and latest["collection_method"] != "send_invoice":
        return True
    return any(invoice["status"] == "open" and invoice.get("_overdue")
               for invoice in ctx.store.all("invoice")
               if subscription_of(invoice) == sub["id"])


def cancel(ctx, sub, *, status="canceled", reason="cancellation_requested", at=None):
    if sub["status"] in ENDED:
        raise StripeError(400, "A canceled subscription can only update its cancellation_details "
                               "and metadata.", code="resource_missing", param="subscription")
    now = ctx.store.now()
    ended = at if at is not None else now
    sub.update(status=status, canceled_at=sub["canceled_at"] or now, ended_at=ended)
    sub["cancellation_details"]["reason"] = sub["cancellation_details"]["reason"] or reason
    if sub.get("_pending_update"):
        sub["pending_update"] = sub["_pending_update"] = None
    schedule = ctx.store.get("subscription_schedule", sub.get("schedule"))
    if schedule and schedule["status"] in ("not_started", "active"):
        # Ending the subscription ends its schedule too.
        schedule_before = ctx.events.snapshot(schedule)
        schedule.update(status="canceled", canceled_at=now, current_phase=None)
        ctx.events.emit("subscription_schedule.canceled", schedule, previous=schedule_before)
    ctx.events.emit("customer.subscription.deleted", sub)


def update_subscription(ctx, sub, params):
    """POST /v1/subscriptions/{id}: quantity/price changes, cancel_at_period_end, metadata.

    When ``proration_behavior=always_invoice`` bills a charge at once and the card declines:

    - ``allow_incomplete`` (the default): the change stands, the invoice stays open after
      ``invoice.payment_failed`` and the subscription becomes ``past_due``;
    - ``error_if_incomplete``: a 402 ``card_error`` and nothing changes (no invoice, no event);
    - ``pending_if_incomplete``: the items stay as they were, the change waits in
      ``pending_update`` until the open invoice is paid (then it applies), status unchanged;
    - ``default_incomplete``: no charge is attempted; the invoice stays open, ``past_due``.
    """
    if sub["status"] in ENDED and set(params) - {"metadata", "cancellation_details", "expand"}:
        raise StripeError(400, "A canceled subscription can only update its cancellation_details "
                               "and metadata.", param="subscription")
    before = ctx.events.snapshot(sub)
    behavior = params.get("proration_behavior", "create_prorations")
    if behavior not in PRORATION_BEHAVIORS:
        raise StripeError(400, f"Invalid proration_behavior: must be one of "
                               f"{', '.join(PRORATION_BEHAVIORS)}", param="proration_behavior",
                          code="parameter_invalid")
    payment_behavior = params.get("payment_behavior", "allow_incomplete")
    if payment_behavior not in UPDATE_PAYMENT_BEHAVIORS:
        raise StripeError(400, f"Invalid payment_behavior: must be one of "
                               f"{', '.join(UPDATE_PAYMENT_BEHAVIORS)}", param="payment_behavior",
                          code="parameter_invalid")
    if payment_behavior == "pending_if_incomplete":
        extra = sorted(set(params) - PENDING_UPDATE_PARAMS)
        if extra:
            raise StripeError(400, f"When `payment_behavior` is `pending_if_incomplete`, you can "
                                   f"only pass supported params; you passed: {', '.join(extra)}.",
                              param=extra[0])
    if sub.get("schedule") and {"cancel_at_period_end", "cancel_at"} & set(params):
        raise StripeError(400, f"The subscription is managed by the subscription schedule "
                               f"`{sub['schedule']}`, and updating any cancelation behavior "
                               f"directly is not allowed. Please update the schedule instead.",
                          param="cancel_at_period_end" if "cancel_at_period_end" in params
                          else "cancel_at")
    if sub.get("_pending_update") and "items" in params:
        raise StripeError(400, "This subscription has a pending update; pay or void its invoice "
                               "before changing items again.", param="items")
    proration_date = as_int(params, "proration_date", ctx.store.now())
    saved_items, saved_records = list(sub["_items"]), _item_records(ctx, sub)
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
    if {"collection_method", "days_until_due", "payment_settings"} & set(params):
        sub.update(collection.fields(params, current=sub))
    if isinstance(params.get("automatic_tax"), dict):
        sub["automatic_tax"] = objects.subscription_automatic_tax(
            as_bool(params["automatic_tax"], "enabled", False))
    new_cycle = sub.pop("_interval_change", False)
    if new_cycle:
        _start_new_cycle(ctx, sub, ctx.store.now())
        prorations += _period_lines(ctx, sub)
    if (behavior == "always_invoice" or new_cycle) and (prorations or sub["_pending_prorations"]):
        invoice = _new_invoice(ctx, sub, "subscription_update",
                               sub["_pending_prorations"] + prorations)
        sub["_pending_prorations"] = []
        _finalize(ctx, invoice)
        if invoice["collection_method"] == "send_invoice":
            if invoice["amount_due"] <= 0:
                pay_invoice(ctx, invoice)  # sent for payment otherwise, nothing charged
        elif payment_behavior == "default_incomplete":
            if invoice["amount_due"] > 0:
                sub["status"] = "past_due"
        else:
            decline = collect(ctx, invoice)
            if decline and payment_behavior == "error_if_incomplete":
                raise card_error(decline)  # the server rolls the whole request back
            if decline and payment_behavior == "pending_if_incomplete":
                new_items, new_records = list(sub["_items"]), _item_records(ctx, sub)
                _restore_items(ctx, sub, saved_items, saved_records)
                sub["_pending_update"] = {"invoice": invoice["id"], "items": new_items,
                                          "records": new_records}
                # render.py fills in subscription_items from _pending_update.
                sub["pending_update"] = {
                    "billing_cycle_anchor": None, "expires_at": ctx.store.now() + 23 * 3600,
                    "trial_end": None, "trial_from_plan": None}
            elif decline:
                sub["status"] = "past_due"
    elif behavior == "create_prorations":
        sub["_pending_prorations"] += prorations
    ctx.events.emit("customer.subscription.updated", sub, previous=before)
    return sub


def _item_records(ctx, sub):
    return {item_id: copy.deepcopy(ctx.store.get("subscription_item", item_id))
            for item_id in sub["_items"]}


def _restore_items(ctx, sub, item_ids, records):
    """Put a subscription's items back to (or forward to) the given ids and record states."""
    stored = ctx.store.objects.setdefault("subscription_item", {})
    for item_id in set(sub["_items"]) - set(item_ids):
        stored.pop(item_id, None)
    for item_id in item_ids:
        record = stored.get(item_id)
        if record is None:
            stored[item_id] = copy.deepcopy(records[item_id])
        else:
            record.clear()
            record.update(copy.deepcopy(records[item_id]))
    sub["_items"] = list(item_ids)


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
    new_price = store.get("price", item["price"])
    if _interval(new_price) != _interval(old_price) and sub["status"] != "trialing":
        # A new billing interval starts a new cycle now, billed in full at once (see
        # _start_new_cycle); only the unused time on the old price is credited.
        sub["_interval_change"] = True
        return _prorate(ctx, sub, item, old_price, old_quantity, None, 0, behavior,
                        proration_date)
    return _prorate(ctx, sub, item, old_price, old_quantity, new_price, item["quantity"],
                    behavior, proration_date)


def _interval(price):
    recurring = price.get("recurring") or {}
    return recurring.get("interval", "month"), recurring.get("interval_count", 1)


def _start_new_cycle(ctx, sub, now):
    """An interval change: billing_cycle_anchor = now, every item's period starts now."""
    sub["billing_cycle_anchor"] = now
    for item in items_of(ctx, sub):
        interval, count = _interval(ctx.store.get("price", item["price"]))
        item["current_period_start"] = now
        item["current_period_end"] = add_interval(now, interval, count)


def _prorate(ctx, sub, item, old_price, old_quantity, new_price, new_quantity, behavior,
             proration_date):
    """Credit unused time at the old total and charge remaining time at the new total."""
    if behavior == "none" or sub["status"] == "trialing":
        return []
    old = amount_for(old_price, old_quantity) if old_price else 0
    new = amount_for(new_price, new_quantity) if new_price else 0
    if old_price is new_price and old_quantity == new_quantity:
        return []
    start, end = item["current_period_start"], item["current_period_end"]
    # A proration_date outside the period clamps to it (nothing left, or the whole period).
    remaining, period = end - proration_date, end - start
    when = _day(proration_date)
    lines = []
    if old_price and old:
        lines.append(objects.invoice_line(
            subscription_id=sub["id"], item_record=item, price_record=old_price,
            quantity=old_quantity, amount=-prorate(old, remaining, period),
            description=f"Unused time on {old_quantity} × {_product_name(ctx, old_price)} "
                        f"after {when}",
            period_start=proration_date, period_end=end, proration=True,
            unit_amount=unit_amount_for(old_price, old_quantity)))
    if new_price and new:
        lines.append(objects.invoice_line(
            subscription_id=sub["id"], item_record=item, price_record=new_price,
            quantity=new_quantity, amount=prorate(new, remaining, period),
            description=f"Remaining time on {new_quantity} × {_product_name(ctx, new_price)} "
                        f"after {when}",
            period_start=proration_date, period_end=end, proration=True,
            unit_amount=unit_amount_for(new_price, new_quantity)))
    return lines


def next_phase(ctx, sub, period_end):
    """The phase of the subscription's schedule that starts when the period ending at
    ``period_end`` ends, or None (no schedule, or no change then)."""
    schedule = ctx.store.get("subscription_schedule", sub.get("schedule"))
    if not schedule or schedule["status"] != "active" or not schedule["current_phase"]:
        return None
    if schedule["current_phase"]["end_date"] != period_end:
        return None
    return next((phase for phase in schedule["phases"] if phase["start_date"] == period_end),
                None)


def _phase_lines(ctx, sub, items, phase):
    """The first period of a schedule phase, as the renewal will invoice it."""
    lines = []
    for index, phase_item in enumerate(phase["items"]):
        price = ctx.store.get("price", phase_item["price"])
        recurring = price.get("recurring") or {}
        start = phase["start_date"]
        end = add_interval(start, recurring.get("interval", "month"),
                           recurring.get("interval_count", 1))
        lines.append(objects.invoice_line(
            subscription_id=sub["id"], item_record=items[min(index, len(items) - 1)],
            price_record=price, quantity=phase_item["quantity"],
            amount=amount_for(price, phase_item["quantity"]),
            description=_describe(ctx, price, phase_item["quantity"]),
            period_start=start, period_end=end))
    return lines


def _day(timestamp):
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%d %b %Y")


def preview_invoice(ctx, sub, params):
    """Invoice.create_preview for a subscription change: prorations plus the next period.

    ``create_prorations`` (default): the next regular invoice, i.e. pending and new proration
    lines followed by the next period at the new quantities. ``always_invoice``: the invoice
    that the update would bill at once (prorations only). ``none``: the next period only.
    Nothing is stored (Stripe keeps no preview): the change is applied to copies and undone.
    """
    details = params.get("subscription_details") or {}
    behavior = details.get("proration_behavior", "create_prorations")
    if behavior not in PRORATION_BEHAVIORS:
        raise StripeError(400, f"Invalid proration_behavior: must be one of "
                               f"{', '.join(PRORATION_BEHAVIORS)}",
                          param="subscription_details[proration_behavior]",
                          code="parameter_invalid")
    proration_date = as_int(details, "proration_date", ctx.store.now())
    shadow_sub = copy.deepcopy(sub)
    saved_items, saved_records = list(sub["_items"]), _item_records(ctx, sub)
    saved_sequence = ctx.store.sequence
    try:
        prorations = []
        for index, change in enumerate(as_list(details.get("items"))):
            prorations += _apply_item_change(ctx, shadow_sub, change,
                                             f"subscription_details[items][{index}]", behavior,
                                             proration_date)
        lines = list(copy.deepcopy(shadow_sub["_pending_prorations"])) + prorations
        new_cycle = shadow_sub.pop("_interval_change", False)
        if new_cycle:  # billed at once: credit for the old interval, the new period in full
            _start_new_cycle(ctx, shadow_sub, ctx.store.now())
            lines += _period_lines(ctx, shadow_sub)
        items = items_of(ctx, shadow_sub)
        period_start = items[0]["current_period_start"] if items else proration_date
        period_end = items[0]["current_period_end"] if items else proration_date
        phase = next_phase(ctx, shadow_sub, period_end)
        if behavior != "always_invoice" and not new_cycle and phase is not None:
            # The subscription's schedule changes its items when this period ends.
            lines += _phase_lines(ctx, sub, items, phase)
        elif behavior != "always_invoice" and not new_cycle:
            for item in items:
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
    finally:
        # Undo the shadow changes: items as they were, nothing created for the preview kept.
        _restore_items(ctx, shadow_sub, saved_items, saved_records)
        ctx.store.sequence = saved_sequence
    if isinstance(params.get("automatic_tax"), dict):
        shadow_sub["automatic_tax"] = objects.subscription_automatic_tax(
            as_bool(params["automatic_tax"], "enabled", False))
    customer = copy.deepcopy(ctx.store.require("customer", sub["customer"]))
    invoice = build_invoice(
        ctx, shadow_sub,
        "subscription_update" if behavior == "always_invoice" or new_cycle else "upcoming",
        lines, customer=customer, period=(period_start, period_end))
    _snapshot_customer(ctx, invoice, customer)
    after = customer["balance"] + invoice["total"]
    invoice.update(id="upcoming_" + invoice["id"], number=None, hosted_invoice_url=None,
                   invoice_pdf=None, starting_balance=customer["balance"],
                   amount_due=max(after, 0), amount_remaining=max(after, 0),
                   ending_balance=None, auto_advance=False,
                   automatically_finalizes_at=None)
    if prorations:  # absent otherwise (the field is not nullable)
        invoice["parent"]["subscription_details"]["subscription_proration_date"] = proration_date
    for line in invoice["_lines"]:
        line["invoice"] = invoice["id"]
    return invoice


def preview_new_schedule(ctx, customer, phases, automatic_tax):
    """Invoice.create_preview with ``customer`` and ``schedule_details``: the invoice a new
    schedule starts with, i.e. its first phase's items for one interval of their prices from
    the phase's ``start_date`` (default now). Nothing is stored."""
    param = "schedule_details[phases][0]"
    if not phases or not isinstance(phases[0], dict):
        raise StripeError(400, "Missing required param: schedule_details[phases].",
                          code="parameter_missing", param="schedule_details[phases]")
    first = phases[0]
    start = first.get("start_date", "now")
    start = ctx.store.now() if start == "now" else as_int(first, "start_date", minimum=0)
    given = as_list(first.get("items"))
    if not given:
        raise StripeError(400, f"Missing required param: {param}[items].",
                          code="parameter_missing", param=f"{param}[items]")
    prices = [ctx.store.require("price", item.get("price") if isinstance(item, dict) else None,
                                param=f"{param}[items][{index}][price]")
              for index, item in enumerate(given)]
    if len({price["currency"] for price in prices}) > 1:
        raise StripeError(400, "All prices of a phase must be in one currency.",
                          param=f"{param}[items]")
    shadow = objects.subscription(ctx.store, customer_id=customer["id"],
                                  currency=prices[0]["currency"], status="incomplete",
                                  metadata=as_metadata(first), automatic_tax=automatic_tax)
    lines, ends = [], []
    for item, price in zip(given, prices, strict=True):
        recurring = price.get("recurring") or {}
        quantity = as_int(item, "quantity", 1, minimum=1)
        end = add_interval(start, recurring.get("interval", "month"),
                           recurring.get("interval_count", 1))
        record = objects.subscription_item(ctx.store, subscription_id=shadow["id"],
                                           price_id=price["id"], quantity=quantity,
                                           period_start=start, period_end=end)
        line = objects.invoice_line(
            subscription_id=None, item_record=record, price_record=price, quantity=quantity,
            amount=amount_for(price, quantity), description=_describe(ctx, price, quantity),
            period_start=start, period_end=end)
        lines.append(line)
        ends.append(end)
    customer = copy.deepcopy(customer)
    invoice = build_invoice(ctx, shadow, "subscription_create", lines, customer=customer,
                            period=(start, ends[0]))
    _snapshot_customer(ctx, invoice, customer)
    after = customer["balance"] + invoice["total"]
    invoice.update(id="upcoming_" + invoice["id"], number=None, hosted_invoice_url=None,
                   invoice_pdf=None, starting_balance=customer["balance"],
                   amount_due=max(after, 0), amount_remaining=max(after, 0),
                   ending_balance=None, auto_advance=False, automatically_finalizes_at=start,
                   parent=None)  # no subscription exists yet
    for line in invoice["_lines"]:
        line["invoice"] = invoice["id"]
    return invoice
