"""Subscription schedules: changes to a subscription planned for a later billing period.

Covered as far as a subscription's own schedule goes (``from_subscription``):

- ``POST /v1/subscription_schedules`` with ``from_subscription``: one phase, the current
  period with the subscription's items, ``end_behavior=release``; the subscription's
  ``schedule`` names it (subscription_schedule.created).
- ``POST /v1/subscription_schedules/{id}`` with ``phases`` (past phases may be left out; the
  first one given is the current phase, its ``start_date`` unchanged), ``end_behavior``,
  ``metadata``, ``proration_behavior``. A phase ends at ``end_date``, after ``duration``, or
  (the last one) after one interval of its first price. A current phase whose quantities
  differ from the subscription's changes the subscription now, prorated by the request's
  ``proration_behavior`` (subscription_schedule.updated).
- At the end of a phase (the renewal, ``billing.renew``): the subscription takes the next
  phase's prices, quantities, metadata and automatic tax; a new interval restarts the billing
  cycle there, so the renewal invoice bills the new price for its whole new period. After the
  last phase the schedule completes (subscription_schedule.completed): ``release`` leaves the
  subscription running as it is, ``cancel`` ends it.
- ``POST .../release`` (subscription_schedule.released): the subscription goes on as it is
  now; ``POST .../cancel`` (subscription_schedule.canceled) ends the subscription too.

As in Stripe, changing a subscription directly leaves its schedule's phases as they are: the
next phase brings its own quantities (keep them in step by updating the phases). A subscription
with a schedule refuses ``cancel_at_period_end``/``cancel_at`` (billing.update_subscription).

The emulator changes phases at the end of a billing period only (a phase must end on one of
the subscription's period ends); mid-period phase changes and prices changed in the current
phase are refused with a message that says so, rather than billed differently from Stripe.
"""

from . import billing, objects
from .errors import StripeError, invalid
from .forms import as_bool, as_int, as_list, as_metadata
from .periods import add_interval

OPEN = ("not_started", "active")
END_BEHAVIORS = ("release", "cancel")
INTERVALS = ("day", "week", "month", "year")
# How far ahead a phase end is searched for among the subscription's coming period ends.
_MAX_PERIODS = 1000


def create(ctx, params):
    if not params.get("from_subscription"):
        raise StripeError(400, "The Stripe emulator creates subscription schedules from existing "
                               "subscriptions only: pass `from_subscription`.",
                          code="parameter_missing", param="from_subscription")
    for key in ("phases", "customer", "start_date", "end_behavior", "default_settings"):
        if key in params:
            raise StripeError(400, f"You cannot set `{key}` if `from_subscription` is set.",
                              param=key)
    sub = ctx.store.require("subscription", params["from_subscription"],
                            param="from_subscription")
    if sub["status"] in billing.ENDED:
        raise StripeError(400, f"The subscription {sub['id']} is canceled: it cannot be "
                               f"managed by a subscription schedule.", param="from_subscription")
    if sub.get("schedule"):
        raise StripeError(400, f"You cannot migrate a subscription that is already attached to a "
                               f"schedule: `{sub['schedule']}`.", param="from_subscription")
    items = billing.items_of(ctx, sub)
    phase = objects.schedule_phase(
        start=items[0]["current_period_start"], end=items[0]["current_period_end"],
        items=[objects.schedule_phase_item(price_id=item["price"], quantity=item["quantity"])
               for item in items],
        currency=sub["currency"], automatic_tax=sub["automatic_tax"]["enabled"])
    schedule = objects.subscription_schedule(ctx.store, subscription_record=sub, phases=[phase])
    schedule["metadata"] = as_metadata(params)
    ctx.store.add("subscription_schedule", schedule)
    sub["schedule"] = schedule["id"]
    ctx.events.emit("subscription_schedule.created", schedule)
    return schedule


def update(ctx, schedule, params):
    _require_open(schedule, "update")
    sub = ctx.store.require("subscription", schedule["subscription"])
    before = ctx.events.snapshot(schedule)
    if "end_behavior" in params:
        if params["end_behavior"] not in END_BEHAVIORS:
            raise StripeError(400, f"The Stripe emulator supports end_behavior "
                                   f"{' or '.join(END_BEHAVIORS)}.", param="end_behavior",
                              code="parameter_invalid")
        schedule["end_behavior"] = params["end_behavior"]
    if "metadata" in params:
        schedule["metadata"] = as_metadata(params, current=schedule["metadata"])
    behavior = params.get("proration_behavior", "create_prorations")
    if behavior not in billing.PRORATION_BEHAVIORS:
        raise StripeError(400, f"Invalid proration_behavior: must be one of "
                               f"{', '.join(billing.PRORATION_BEHAVIORS)}",
                          param="proration_behavior", code="parameter_invalid")
    if "phases" in params:
        phases = _phases(ctx, schedule, sub, as_list(params["phases"]))
        _change_current(ctx, sub, phases[0], behavior)
        schedule["phases"] = phases
        schedule["current_phase"] = {"end_date": phases[0]["end_date"],
                                     "start_date": phases[0]["start_date"]}
    ctx.events.emit("subscription_schedule.updated", schedule, previous=before)
    return schedule


def release(ctx, schedule):
    """The schedule lets go: the subscription continues as it is, without one."""
    _require_open(schedule, "release")
    before = ctx.events.snapshot(schedule)
    sub = ctx.store.get("subscription", schedule["subscription"])
    if sub is not None and sub.get("schedule") == schedule["id"]:
        sub["schedule"] = None
    schedule.update(status="released", released_at=ctx.store.now(), current_phase=None,
                    released_subscription=schedule["subscription"], subscription=None)
    ctx.events.emit("subscription_schedule.released", schedule, previous=before)
    return schedule


def cancel(ctx, schedule):
    """Cancel the schedule and, if it still runs, its subscription (now)."""
    _require_open(schedule, "cancel")
    sub = ctx.store.get("subscription", schedule["subscription"])
    if sub is not None and sub["status"] not in billing.ENDED:
        billing.cancel(ctx, sub)  # cancels the schedule too
    else:
        before = ctx.events.snapshot(schedule)
        schedule.update(status="canceled", canceled_at=ctx.store.now(), current_phase=None)
        ctx.events.emit("subscription_schedule.canceled", schedule, previous=before)
    return schedule


def enter_next_phase(ctx, sub, period_end):
    """At the renewal ending the period at ``period_end``: if the subscription's schedule has a
    phase ending then, enter the next phase (the subscription takes its items) or, after the
    last one, complete the schedule. Returns "canceled" when that ended the subscription."""
    schedule = ctx.store.get("subscription_schedule", sub.get("schedule"))
    if not schedule or schedule["status"] != "active" or not schedule["current_phase"]:
        return None
    if schedule["current_phase"]["end_date"] != period_end:
        return None
    before = ctx.events.snapshot(schedule)
    phase = billing.next_phase(ctx, sub, period_end)
    if phase is None:
        return _complete(ctx, schedule, sub, period_end, before)
    _take_items(ctx, sub, phase, period_end)
    schedule["current_phase"] = {"end_date": phase["end_date"], "start_date": phase["start_date"]}
    ctx.events.emit("subscription_schedule.updated", schedule, previous=before)
    return None


# -- phases ------------------------------------------------------------------------------

def _require_open(schedule, action):
    if schedule["status"] not in OPEN:
        raise StripeError(400, f"You cannot {action} a subscription schedule that is currently in "
                               f"the `{schedule['status']}` status. It must be in one of the "
                               f"following statuses: `not_started`, `active`.",
                          code="resource_missing" if action == "update" else None)


def _timestamp(value, now, param):
    if value == "now":
        return now
    return as_int({param: value}, param, minimum=0)


def _phases(ctx, schedule, sub, given):
    if not given:
        raise StripeError(400, "Missing required param: phases.", code="parameter_missing",
                          param="phases")
    now = ctx.store.now()
    current = schedule["current_phase"]
    phases = []
    start = current["start_date"]
    for index, raw in enumerate(given):
        param = f"phases[{index}]"
        if not isinstance(raw, dict):
            raise invalid(f"Invalid hash: {param}.", param, code="parameter_invalid")
        if "start_date" in raw:
            given_start = _timestamp(raw["start_date"], now, f"{param}[start_date]")
            if index == 0 and given_start != start:
                raise StripeError(400, "You can not modify the start date of the current phase.",
                                  param=f"{param}[start_date]")
            if index > 0 and given_start != start:
                raise StripeError(400, f"The start_date of {param} must be the end_date of the "
                                       f"phase before it.", param=f"{param}[start_date]")
        items = _items(ctx, sub, raw, param)
        end = _end(raw, start, items, now, param, last=index == len(given) - 1, ctx=ctx)
        behavior = raw.get("proration_behavior", "create_prorations")
        if behavior not in billing.PRORATION_BEHAVIORS:
            raise StripeError(400, f"Invalid proration_behavior: must be one of "
                                   f"{', '.join(billing.PRORATION_BEHAVIORS)}",
                              param=f"{param}[proration_behavior]", code="parameter_invalid")
        automatic_tax = schedule["default_settings"]["automatic_tax"]["enabled"]
        if isinstance(raw.get("automatic_tax"), dict):
            automatic_tax = as_bool(raw["automatic_tax"], "enabled", automatic_tax)
        phases.append(objects.schedule_phase(
            start=start, end=end, items=items, currency=sub["currency"],
            proration_behavior=behavior, automatic_tax=automatic_tax,
            metadata=as_metadata(raw)))
        start = end
    if phases[0]["end_date"] <= now:
        raise StripeError(400, "The current phase must end in the future.",
                          param="phases[0][end_date]")
    _on_period_ends(ctx, sub, phases)
    return phases


def _items(ctx, sub, raw, param):
    given = as_list(raw.get("items"))
    if not given:
        raise StripeError(400, f"Missing required param: {param}[items].",
                          code="parameter_missing", param=f"{param}[items]")
    items = []
    for index, item in enumerate(given):
        item_param = f"{param}[items][{index}]"
        if not isinstance(item, dict):
            raise invalid(f"Invalid hash: {item_param}.", item_param, code="parameter_invalid")
        price = ctx.store.require("price", item.get("price"), param=f"{item_param}[price]")
        if not price.get("recurring"):
            raise StripeError(400, f"The price {price['id']} is not recurring.",
                              param=f"{item_param}[price]")
        if price["currency"] != sub["currency"]:
            raise StripeError(400, f"The price {price['id']} is in {price['currency']}, the "
                                   f"subscription in {sub['currency']}.",
                              param=f"{item_param}[price]")
        items.append(objects.schedule_phase_item(
            price_id=price["id"], quantity=as_int(item, "quantity", 1, minimum=0),
            metadata=as_metadata(item)))
    return items


def _end(raw, start, items, now, param, *, last, ctx):
    if "end_date" in raw and "duration" in raw:
        raise StripeError(400, f"You cannot set both `end_date` and `duration` on {param}.",
                          param=f"{param}[duration]")
    if "end_date" in raw:
        end = _timestamp(raw["end_date"], now, f"{param}[end_date]")
    elif isinstance(raw.get("duration"), dict):
        duration = raw["duration"]
        interval = duration.get("interval")
        if interval not in INTERVALS:
            raise StripeError(400, f"Invalid {param}[duration][interval]: must be one of "
                                   f"{', '.join(INTERVALS)}", code="parameter_invalid",
                              param=f"{param}[duration][interval]")
        end = add_interval(start, interval, as_int(duration, "interval_count", 1, minimum=1))
    elif last:
        recurring = ctx.store.get("price", items[0]["price"])["recurring"]
        end = add_interval(start, recurring["interval"], recurring.get("interval_count", 1))
    else:
        raise StripeError(400, f"Missing required param: {param}[end_date].",
                          code="parameter_missing", param=f"{param}[end_date]")
    if end <= start:
        raise StripeError(400, f"The end_date of {param} must be after its start_date.",
                          param=f"{param}[end_date]")
    return end


def _on_period_ends(ctx, sub, phases):
    """Refuse (as a limit of the emulator) a phase that does not end on a period end."""
    period_end = billing.items_of(ctx, sub)[0]["current_period_end"]
    first_price = ctx.store.get("price", billing.items_of(ctx, sub)[0]["price"])
    reachable = _period_ends(period_end, first_price, include_start=True)
    for index, phase in enumerate(phases):
        if index > 0:
            price = ctx.store.get("price", phase["items"][0]["price"])
            reachable = _period_ends(phase["start_date"], price, include_start=False)
        if phase["end_date"] not in reachable(phase["end_date"]):
            raise StripeError(400, f"The Stripe emulator changes phases at the end of a billing "
                                   f"period only: phases[{index}][end_date] must be one of the "
                                   f"subscription's period ends (the current one is "
                                   f"{period_end}).", param=f"phases[{index}][end_date]")


def _period_ends(first, price, *, include_start):
    recurring = price.get("recurring") or {}

    def up_to(limit):
        ends, moment, step = set(), first, 0
        if include_start:
            ends.add(first)
        while moment < limit and step < _MAX_PERIODS:
            step += 1
            moment = add_interval(first, recurring.get("interval", "month"),
                                  recurring.get("interval_count", 1) * step)
            ends.add(moment)
        return ends

    return up_to


def _change_current(ctx, sub, phase, behavior):
    """The current phase's quantities apply now (prorated as asked); its prices must be the
    subscription's."""
    items = billing.items_of(ctx, sub)
    by_price = {item["price"]: item for item in items}
    if sorted(i["price"] for i in phase["items"]) != sorted(by_price):
        raise StripeError(400, "The Stripe emulator changes the current phase's quantities only: "
                               "give it the subscription's prices and change prices in a later "
                               "phase.", param="phases[0][items]")
    changes = [{"id": by_price[i["price"]]["id"], "quantity": str(i["quantity"])}
               for i in phase["items"] if by_price[i["price"]]["quantity"] != i["quantity"]]
    if changes:
        billing.update_subscription(ctx, sub, {"items": changes, "proration_behavior": behavior})


def _take_items(ctx, sub, phase, at):
    """The subscription takes the phase's items at ``at`` (a period end: nothing to prorate)."""
    items = billing.items_of(ctx, sub)
    old_interval = billing._interval(ctx.store.get("price", items[0]["price"]))
    kept = []
    for index, phase_item in enumerate(phase["items"]):
        if index < len(items):
            item = items[index]
            item["price"] = phase_item["price"]
            item["quantity"] = phase_item["quantity"]
            item["metadata"] = {**item["metadata"], **phase_item["metadata"]}
        else:
            item = objects.subscription_item(
                ctx.store, subscription_id=sub["id"], price_id=phase_item["price"],
                quantity=phase_item["quantity"], period_start=items[0]["current_period_start"],
                period_end=at, metadata=phase_item["metadata"])
            ctx.store.add("subscription_item", item)
        kept.append(item["id"])
    for item in items[len(phase["items"]):]:
        ctx.store.objects["subscription_item"].pop(item["id"], None)
    sub["_items"] = kept
    sub["metadata"] = {**sub["metadata"], **phase["metadata"]}
    sub["automatic_tax"] = objects.subscription_automatic_tax(phase["automatic_tax"]["enabled"])
    if billing._interval(ctx.store.get("price", phase["items"][0]["price"])) != old_interval:
        sub["billing_cycle_anchor"] = at  # a new interval: the cycle restarts with the phase


def _complete(ctx, schedule, sub, at, before):
    sub["schedule"] = None
    schedule.update(status="completed", completed_at=at, current_phase=None)
    ctx.events.emit("subscription_schedule.completed", schedule, previous=before)
    if schedule["end_behavior"] == "cancel":
        billing.cancel(ctx, sub, at=at)
        return "canceled"
    return None
