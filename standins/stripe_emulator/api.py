"""The /v1 endpoints: parameter parsing and rendering around the state transitions.

Each handler gets the request (decoded params, rendering options) and a Context, and
returns ``(status, json_body)``. Anything invalid raises StripeError.
"""

import re
from collections.abc import Callable
from typing import Any

from . import billing, checkout, collection, customers, funding, objects, schedules
from .errors import StripeError, invalid
from .forms import as_bool, as_int, as_list, as_metadata
from .render import render, render_list

ROUTES: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = []


def route(method, pattern):
    def register(function):
        ROUTES.append((method, re.compile("^" + pattern + "$"), function))
        return function
    return register


def match(method, path):
    for route_method, pattern, function in ROUTES:
        found = pattern.match(path)
        if found and route_method == method:
            return function, found.groupdict()
    return None, None


def _one(ctx, req, record):
    return 200, render(ctx.store, record, req.params.get("expand"), req.legacy)


def _list(ctx, req, records, url):
    return 200, render_list(ctx.store, records, url=url, params=req.params, legacy=req.legacy)


# -- products ----------------------------------------------------------------------------

@route("POST", "/v1/products")
def create_product(ctx, req):
    p = req.params
    if not p.get("name"):
        raise StripeError(400, "Missing required param: name.", code="parameter_missing",
                          param="name")
    if p.get("id") and ctx.store.get("product", p["id"]):
        raise StripeError(400, "Product already exists.", code="resource_already_exists",
                          param="id")
    record = objects.product(ctx.store, name=p["name"], product_id=p.get("id"),
                             description=p.get("description"), metadata=as_metadata(p),
                             active=as_bool(p, "active", True))
    ctx.store.add("product", record)
    ctx.events.emit("product.created", record)
    return _one(ctx, req, record)


@route("GET", "/v1/products/(?P<id>[^/]+)")
def get_product(ctx, req, id):
    return _one(ctx, req, ctx.store.require("product", id))


@route("POST", "/v1/products/(?P<id>[^/]+)")
def update_product(ctx, req, id):
    record = ctx.store.require("product", id)
    before = ctx.events.snapshot(record)
    p = req.params
    for key in ("name", "description", "default_price"):
        if key in p:
            record[key] = p[key] or None
    if "active" in p:
        record["active"] = as_bool(p, "active")
    record["metadata"] = as_metadata(p, current=record["metadata"])
    record["updated"] = ctx.store.now()
    ctx.events.emit("product.updated", record, previous=before)
    return _one(ctx, req, record)


@route("GET", "/v1/products")
def list_products(ctx, req):
    records = ctx.store.all("product")
    if "active" in req.params:
        records = [r for r in records if r["active"] == as_bool(req.params, "active")]
    return _list(ctx, req, records, "/v1/products")


# -- prices ------------------------------------------------------------------------------

def _parse_tiers(p):
    tiers = []
    for index, raw in enumerate(as_list(p.get("tiers"))):
        up_to = raw.get("up_to")
        if up_to is None:
            raise invalid(f"Missing required param: tiers[{index}][up_to].",
                          f"tiers[{index}][up_to]", code="parameter_missing")
        tiers.append(objects.tier(None if up_to == "inf" else as_int(raw, "up_to", minimum=1),
                                  as_int(raw, "unit_amount"), as_int(raw, "flat_amount")))
    if not tiers or tiers[-1]["up_to"] is not None:
        raise invalid("The last tier must have up_to=inf.", "tiers", code="parameter_invalid")
    return tiers


@route("POST", "/v1/prices")
def create_price(ctx, req):
    p, store = req.params, ctx.store
    if p.get("product"):
        product_id = store.require("product", p["product"], param="product")["id"]
    elif isinstance(p.get("product_data"), dict) and p["product_data"].get("name"):
        product = store.add("product", objects.product(store, name=p["product_data"]["name"]))
        ctx.events.emit("product.created", product)
        product_id = product["id"]
    else:
        raise StripeError(400, "You must specify either `product` or `product_data` when "
                               "creating a price.", code="parameter_missing", param="product")
    if not p.get("currency"):
        raise StripeError(400, "Missing required param: currency.", code="parameter_missing",
                          param="currency")
    scheme = p.get("billing_scheme", "per_unit")
    tiers = tiers_mode = unit_amount = None
    if scheme == "tiered":
        tiers_mode = p.get("tiers_mode")
        if tiers_mode not in ("volume", "graduated"):
            raise invalid("tiers_mode must be volume or graduated for tiered prices.",
                          "tiers_mode", code="parameter_missing")
        tiers = _parse_tiers(p)
    else:
        unit_amount = as_int(p, "unit_amount", minimum=0)
        if unit_amount is None:
            raise invalid("Missing required param: unit_amount.", "unit_amount",
                          code="parameter_missing")
    recurring = None
    if isinstance(p.get("recurring"), dict):
        interval = p["recurring"].get("interval")
        if interval not in ("day", "week", "month", "year"):
            raise invalid("Invalid recurring[interval].", "recurring[interval]",
                          code="parameter_invalid")
        recurring = objects.recurring(interval, as_int(p["recurring"], "interval_count", 1))
    lookup_key = p.get("lookup_key") or None
    if lookup_key:
        holder = next((r for r in store.all("price") if r["lookup_key"] == lookup_key), None)
        if holder and not as_bool(p, "transfer_lookup_key", False):
            raise StripeError(400, f"A price ({holder['id']}) already uses that lookup key.",
                              code="lookup_key_exists", param="lookup_key")
        if holder:
            holder["lookup_key"] = None
    record = objects.price(store, product_id=product_id, currency=p["currency"].lower(),
                           unit_amount=unit_amount, billing_scheme=scheme, tiers=tiers,
                           tiers_mode=tiers_mode, recurring=recurring, lookup_key=lookup_key,
                           nickname=p.get("nickname"), metadata=as_metadata(p),
                           active=as_bool(p, "active", True),
                           tax_behavior=_tax_behavior(p, "unspecified"))
    store.add("price", record)
    ctx.events.emit("price.created", record)
    return _one(ctx, req, record)


TAX_BEHAVIORS = ("exclusive", "inclusive", "unspecified")


def _tax_behavior(params, current):
    behavior = params.get("tax_behavior") or current
    if behavior not in TAX_BEHAVIORS:
        raise invalid(f"Invalid tax_behavior: must be one of {', '.join(TAX_BEHAVIORS)}",
                      "tax_behavior", code="parameter_invalid")
    if current != "unspecified" and behavior != current:
        raise invalid("A price's tax_behavior can be set once, from unspecified.",
                      "tax_behavior", code="parameter_invalid")
    return behavior


@route("GET", "/v1/prices/(?P<id>[^/]+)")
def get_price(ctx, req, id):
    return _one(ctx, req, ctx.store.require("price", id))


@route("POST", "/v1/prices/(?P<id>[^/]+)")
def update_price(ctx, req, id):
    record = ctx.store.require("price", id)
    before = ctx.events.snapshot(record)
    p = req.params
    if "active" in p:
        record["active"] = as_bool(p, "active")
    if "nickname" in p:
        record["nickname"] = p["nickname"] or None
    if "tax_behavior" in p:
        record["tax_behavior"] = _tax_behavior(p, record["tax_behavior"])
    if "lookup_key" in p:
        holder = next((r for r in ctx.store.all("price")
                       if r["lookup_key"] == p["lookup_key"] and r is not record), None)
        if holder and not as_bool(p, "transfer_lookup_key", False):
            raise StripeError(400, f"A price ({holder['id']}) already uses that lookup key.",
                              code="lookup_key_exists", param="lookup_key")
        if holder:
            holder["lookup_key"] = None
        record["lookup_key"] = p["lookup_key"] or None
    record["metadata"] = as_metadata(p, current=record["metadata"])
    ctx.events.emit("price.updated", record, previous=before)
    return _one(ctx, req, record)


@route("GET", "/v1/prices")
def list_prices(ctx, req):
    p = req.params
    records = ctx.store.all("price")
    if p.get("lookup_keys"):
        keys = as_list(p["lookup_keys"])
        records = [r for r in records if r["lookup_key"] in keys]
    if p.get("product"):
        records = [r for r in records if r["product"] == p["product"]]
    if "active" in p:
        records = [r for r in records if r["active"] == as_bool(p, "active")]
    if p.get("type"):
        records = [r for r in records if r["type"] == p["type"]]
    if p.get("currency"):
        records = [r for r in records if r["currency"] == p["currency"].lower()]
    return _list(ctx, req, records, "/v1/prices")


# -- customers ---------------------------------------------------------------------------

@route("POST", "/v1/customers")
def create_customer(ctx, req):
    return _one(ctx, req, customers.create(ctx, req.params))


@route("GET", "/v1/customers/(?P<id>[^/]+)")
def get_customer(ctx, req, id):
    record = ctx.store.get("customer", id)
    if record and record.get("_deleted"):
        return 200, {"id": id, "object": "customer", "deleted": True}
    return _one(ctx, req, ctx.store.require("customer", id))


@route("POST", "/v1/customers/(?P<id>[^/]+)")
def update_customer(ctx, req, id):
    if "tax_id_data" in req.params:
        raise StripeError(400, "Received unknown parameter: tax_id_data", code="parameter_unknown",
                          param="tax_id_data")
    return _one(ctx, req, customers.update(ctx, _customer(ctx, id), req.params))


def _customer(ctx, customer_id):
    record = ctx.store.require("customer", customer_id)
    if record.get("_deleted"):
        raise StripeError(404, f"No such customer: '{customer_id}'", code="resource_missing",
                          param="id")
    return record


@route("POST", "/v1/customers/(?P<id>[^/]+)/tax_ids")
def create_tax_id(ctx, req, id):
    p = req.params
    return _one(ctx, req, customers.add_tax_id(ctx, _customer(ctx, id), p.get("type"),
                                               p.get("value")))


@route("GET", "/v1/customers/(?P<id>[^/]+)/tax_ids")
def list_tax_ids(ctx, req, id):
    customer = _customer(ctx, id)
    return _list(ctx, req, customers.tax_ids_of(ctx, customer), f"/v1/customers/{id}/tax_ids")


@route("GET", "/v1/customers/(?P<id>[^/]+)/tax_ids/(?P<tax_id>[^/]+)")
def get_tax_id(ctx, req, id, tax_id):
    return _one(ctx, req, customers.tax_id_of(ctx, _customer(ctx, id), tax_id))


@route("DELETE", "/v1/customers/(?P<id>[^/]+)/tax_ids/(?P<tax_id>[^/]+)")
def delete_tax_id(ctx, req, id, tax_id):
    return 200, customers.delete_tax_id(ctx, _customer(ctx, id), tax_id)


@route("POST", "/v1/customers/(?P<id>[^/]+)/funding_instructions")
def create_funding_instructions(ctx, req, id):
    return 200, funding.instructions(ctx.settings, _customer(ctx, id), req.params)


@route("DELETE", "/v1/customers/(?P<id>[^/]+)")
def delete_customer(ctx, req, id):
    record = ctx.store.require("customer", id)
    for sub in ctx.store.all("subscription"):
        if sub["customer"] == id and sub["status"] not in billing.ENDED:
            billing.cancel(ctx, sub)
    record["_deleted"] = True
    ctx.events.emit("customer.deleted", record)
    return 200, {"id": id, "object": "customer", "deleted": True}


@route("GET", "/v1/customers")
def list_customers(ctx, req):
    records = [r for r in ctx.store.all("customer") if not r.get("_deleted")]
    if req.params.get("email"):
        records = [r for r in records if r["email"] == req.params["email"]]
    return _list(ctx, req, records, "/v1/customers")


# -- tax rates (created by automatic tax, tax.py) -------------------------------------------

@route("GET", "/v1/tax_rates/(?P<id>[^/]+)")
def get_tax_rate(ctx, req, id):
    return _one(ctx, req, ctx.store.require("tax_rate", id))


@route("GET", "/v1/tax_rates")
def list_tax_rates(ctx, req):
    records = ctx.store.all("tax_rate")
    for key in ("active", "inclusive"):
        if key in req.params:
            records = [r for r in records if r[key] == as_bool(req.params, key)]
    return _list(ctx, req, records, "/v1/tax_rates")


# -- checkout sessions -------------------------------------------------------------------

@route("POST", "/v1/checkout/sessions")
def create_checkout_session(ctx, req):
    return _one(ctx, req, checkout.create_session(ctx, req.params))


@route("GET", "/v1/checkout/sessions/(?P<id>[^/]+)")
def get_checkout_session(ctx, req, id):
    return _one(ctx, req, ctx.store.require("checkout.session", id))


@route("POST", "/v1/checkout/sessions/(?P<id>[^/]+)/expire")
def expire_checkout_session(ctx, req, id):
    return _one(ctx, req, checkout.expire(ctx, ctx.store.require("checkout.session", id)))


@route("GET", "/v1/checkout/sessions/(?P<id>[^/]+)/line_items")
def list_checkout_line_items(ctx, req, id):
    session = ctx.store.require("checkout.session", id)
    listing = render(ctx.store, session, ["line_items"])["line_items"]
    return 200, listing


@route("GET", "/v1/checkout/sessions")
def list_checkout_sessions(ctx, req):
    records = ctx.store.all("checkout.session")
    for key in ("customer", "subscription", "status"):
        if req.params.get(key):
            records = [r for r in records if r[key] == req.params[key]]
    return _list(ctx, req, records, "/v1/checkout/sessions")


# -- subscriptions -----------------------------------------------------------------------

@route("POST", "/v1/subscriptions")
def create_subscription(ctx, req):
    p, store = req.params, ctx.store
    customer = store.require("customer", p.get("customer"), param="customer")
    raw_items = as_list(p.get("items"))
    if not raw_items:
        raise StripeError(400, "Missing required param: items.", code="parameter_missing",
                          param="items")
    items = []
    for index, raw in enumerate(raw_items):
        price = store.require("price", raw.get("price"), param=f"items[{index}][price]")
        items.append((price, as_int(raw, "quantity", 1, minimum=1), as_metadata(raw)))
    behavior = p.get("payment_behavior", "allow_incomplete")
    fields = collection.fields(p)
    if fields["collection_method"] == "send_invoice":
        payment = "send_invoice"
    else:
        payment = "incomplete" if behavior == "default_incomplete" else "charge"
    sub = billing.create_subscription(
        ctx, customer=customer, items=items, metadata=as_metadata(p),
        trial_period_days=as_int(p, "trial_period_days", None, minimum=1),
        description=p.get("description"), payment=payment,
        automatic_tax=automatic_tax_enabled(p), collection=fields)
    if as_bool(p, "cancel_at_period_end", False):
        billing.update_subscription(ctx, sub, {"cancel_at_period_end": "true"})
    return _one(ctx, req, sub)


def automatic_tax_enabled(params, default=False):
    raw = params.get("automatic_tax")
    if raw is None:
        return default
    if not isinstance(raw, dict) or "enabled" not in raw:
        raise StripeError(400, "Missing required param: automatic_tax[enabled].",
                          code="parameter_missing", param="automatic_tax[enabled]")
    return as_bool(raw, "enabled")


@route("GET", "/v1/subscriptions/(?P<id>[^/]+)")
def get_subscription(ctx, req, id):
    return _one(ctx, req, ctx.store.require("subscription", id))


@route("POST", "/v1/subscriptions/(?P<id>[^/]+)")
def update_subscription(ctx, req, id):
    sub = ctx.store.require("subscription", id)
    return _one(ctx, req, billing.update_subscription(ctx, sub, req.params))


@route("DELETE", "/v1/subscriptions/(?P<id>[^/]+)")
def cancel_subscription(ctx, req, id):
    sub = ctx.store.require("subscription", id)
    billing.cancel(ctx, sub)
    return _one(ctx, req, sub)


@route("GET", "/v1/subscriptions")
def list_subscriptions(ctx, req):
    p = req.params
    records = ctx.store.all("subscription")
    if p.get("customer"):
        records = [r for r in records if r["customer"] == p["customer"]]
    status = p.get("status")
    if status and status != "all":
        records = [r for r in records if r["status"] == status]
    elif not status:
        # Stripe hides canceled subscriptions unless asked for them.
        records = [r for r in records if r["status"] not in billing.ENDED]
    if p.get("price"):
        records = [r for r in records
                   if any(ctx.store.get("subscription_item", i)["price"] == p["price"]
                          for i in r["_items"])]
    return _list(ctx, req, records, "/v1/subscriptions")


# -- subscription items ------------------------------------------------------------------

@route("GET", "/v1/subscription_items")
def list_subscription_items(ctx, req):
    sub = ctx.store.require("subscription", req.params.get("subscription"),
                            param="subscription")
    records = billing.items_of(ctx, sub)
    return _list(ctx, req, records, "/v1/subscription_items")


@route("GET", "/v1/subscription_items/(?P<id>[^/]+)")
def get_subscription_item(ctx, req, id):
    return _one(ctx, req, ctx.store.require("subscription_item", id))


@route("POST", "/v1/subscription_items/(?P<id>[^/]+)")
def update_subscription_item(ctx, req, id):
    item = ctx.store.require("subscription_item", id)
    sub = ctx.store.require("subscription", item["subscription"])
    change = {k: v for k, v in req.params.items() if k in ("quantity", "price", "metadata")}
    params = {"items": [{"id": id, **change}]}
    for key in ("proration_behavior", "proration_date", "payment_behavior"):
        if key in req.params:
            params[key] = req.params[key]
    billing.update_subscription(ctx, sub, params)
    return _one(ctx, req, item)


# -- subscription schedules (schedules.py) -----------------------------------------------

@route("POST", "/v1/subscription_schedules")
def create_subscription_schedule(ctx, req):
    return _one(ctx, req, schedules.create(ctx, req.params))


@route("GET", "/v1/subscription_schedules/(?P<id>[^/]+)")
def get_subscription_schedule(ctx, req, id):
    return _one(ctx, req, ctx.store.require("subscription_schedule", id))


@route("POST", "/v1/subscription_schedules/(?P<id>[^/]+)")
def update_subscription_schedule(ctx, req, id):
    schedule = ctx.store.require("subscription_schedule", id)
    return _one(ctx, req, schedules.update(ctx, schedule, req.params))


@route("POST", "/v1/subscription_schedules/(?P<id>[^/]+)/release")
def release_subscription_schedule(ctx, req, id):
    return _one(ctx, req, schedules.release(ctx, ctx.store.require("subscription_schedule", id)))


@route("POST", "/v1/subscription_schedules/(?P<id>[^/]+)/cancel")
def cancel_subscription_schedule(ctx, req, id):
    return _one(ctx, req, schedules.cancel(ctx, ctx.store.require("subscription_schedule", id)))


@route("GET", "/v1/subscription_schedules")
def list_subscription_schedules(ctx, req):
    p = req.params
    records = ctx.store.all("subscription_schedule")
    if p.get("customer"):
        records = [r for r in records if r["customer"] == p["customer"]]
    if "scheduled" in p:
        scheduled = as_bool(p, "scheduled")
        records = [r for r in records if (r["status"] == "not_started") == scheduled]
    return _list(ctx, req, records, "/v1/subscription_schedules")


# -- invoices ----------------------------------------------------------------------------

def unrecognized(req):
    """What Stripe answers for an endpoint it does not have."""
    return StripeError(404, f"Unrecognized request URL ({req.method}: {req.path}). Please see "
                            f"https://stripe.com/docs or we can help at "
                            f"https://support.stripe.com/.")


@route("POST", "/v1/invoices/create_preview")
def create_invoice_preview(ctx, req):
    p = req.params
    if p.get("schedule") or p.get("schedule_details"):
        return _one(ctx, req, _schedule_preview(ctx, p))
    if not p.get("subscription"):
        raise StripeError(400, "The Stripe emulator previews changes to existing "
                               "subscriptions only: pass `subscription`.",
                          code="parameter_missing", param="subscription")
    sub = ctx.store.require("subscription", p["subscription"], param="subscription")
    if p.get("customer") and p["customer"] != sub["customer"]:
        raise StripeError(400, f"The subscription {sub['id']} does not belong to the customer "
                               f"{p['customer']}.", param="customer")
    return _one(ctx, req, billing.preview_invoice(ctx, sub, p))


def _schedule_preview(ctx, p):
    """create_preview with `schedule` (that schedule's subscription's next invoice, its phases
    followed) or with `customer` and `schedule_details` (the first invoice of a new schedule)."""
    for key in ("subscription", "subscription_details"):
        if p.get(key):
            raise StripeError(400, f"You cannot set `{key}` together with `schedule` or "
                                   f"`schedule_details`.", param=key)
    if p.get("schedule"):
        if p.get("schedule_details"):
            raise StripeError(400, "The Stripe emulator previews a schedule as it is: pass "
                                   "`schedule` or `schedule_details`, not both.",
                              param="schedule_details")
        schedule = ctx.store.require("subscription_schedule", p["schedule"], param="schedule")
        sub = ctx.store.get("subscription", schedule["subscription"] or "")
        if sub is None or schedule["status"] not in schedules.OPEN:
            raise StripeError(400, f"The subscription schedule {schedule['id']} is "
                                   f"{schedule['status']}: it has no upcoming invoice.",
                              code="invoice_upcoming_none", param="schedule")
        return billing.preview_invoice(ctx, sub, {"automatic_tax": p.get("automatic_tax")}
                                       if p.get("automatic_tax") else {})
    customer = ctx.store.require("customer", p.get("customer"), param="customer")
    details = p["schedule_details"]
    if not isinstance(details, dict):
        raise invalid("Invalid hash: schedule_details.", "schedule_details",
                      code="parameter_invalid")
    return billing.preview_new_schedule(ctx, customer, as_list(details.get("phases")),
                                        automatic_tax_enabled(p))


# The upcoming-invoice endpoints were removed in 2025-03-31.basil (create_preview replaces
# them); for current API versions Stripe answers them as unknown URLs, and so does this.
@route("GET", "/v1/invoices/upcoming")
def upcoming_invoice_removed(ctx, req):
    raise unrecognized(req)


@route("GET", "/v1/invoices/upcoming/lines")
def upcoming_invoice_lines_removed(ctx, req):
    raise unrecognized(req)


@route("GET", "/v1/invoices/(?P<id>[^/]+)/lines")
def list_invoice_lines(ctx, req, id):
    invoice = ctx.store.require("invoice", id)
    listing = render(ctx.store, invoice, legacy=req.legacy)["lines"]
    return 200, listing


@route("GET", "/v1/invoices/(?P<id>[^/]+)")
def get_invoice(ctx, req, id):
    return _one(ctx, req, ctx.store.require("invoice", id))


@route("GET", "/v1/invoices")
def list_invoices(ctx, req):
    p = req.params
    records = ctx.store.all("invoice")
    if p.get("customer"):
        records = [r for r in records if r["customer"] == p["customer"]]
    if p.get("subscription"):
        records = [r for r in records
                   if r["parent"]["subscription_details"]["subscription"] == p["subscription"]]
    if p.get("status"):
        records = [r for r in records if r["status"] == p["status"]]
    return _list(ctx, req, records, "/v1/invoices")


# -- events ------------------------------------------------------------------------------

@route("GET", "/v1/events/(?P<id>[^/]+)")
def get_event(ctx, req, id):
    return _one(ctx, req, ctx.store.require("event", id))


@route("GET", "/v1/events")
def list_events(ctx, req):
    p = req.params
    records = ctx.store.all("event")
    types = as_list(p.get("types")) or ([p["type"]] if p.get("type") else [])
    if types:
        patterns = [re.compile("^" + re.escape(t).replace(r"\*", ".*") + "$") for t in types]
        records = [r for r in records if any(pat.match(r["type"]) for pat in patterns)]
    return _list(ctx, req, records, "/v1/events")


# -- billing portal ----------------------------------------------------------------------

@route("POST", "/v1/billing_portal/configurations")
def create_portal_configuration(ctx, req):
    p = req.params
    if not isinstance(p.get("features"), dict):
        raise StripeError(400, "Missing required param: features.", code="parameter_missing",
                          param="features")
    record = objects.portal_configuration(
        ctx.store, features=objects.portal_features(p["features"]),
        business_profile=objects.portal_business_profile(p.get("business_profile")),
        default_return_url=p.get("default_return_url") or None, metadata=as_metadata(p),
        name=p.get("name") or None)
    if isinstance(p.get("login_page"), dict):
        record["login_page"]["enabled"] = as_bool(p["login_page"], "enabled", False)
        if record["login_page"]["enabled"]:
            record["login_page"]["url"] = f"{ctx.base_url}/billing_portal/login/{record['id']}"
    return _one(ctx, req, ctx.store.add("billing_portal.configuration", record))


@route("GET", "/v1/billing_portal/configurations/(?P<id>[^/]+)")
def get_portal_configuration(ctx, req, id):
    return _one(ctx, req, ctx.store.require("billing_portal.configuration", id))


@route("POST", "/v1/billing_portal/configurations/(?P<id>[^/]+)")
def update_portal_configuration(ctx, req, id):
    record = ctx.store.require("billing_portal.configuration", id)
    p = req.params
    if isinstance(p.get("features"), dict):
        record["features"] = objects.portal_features(p["features"], current=record["features"])
    if isinstance(p.get("business_profile"), dict):
        record["business_profile"] = objects.portal_business_profile(
            {**record["business_profile"], **p["business_profile"]})
    for key in ("default_return_url", "name"):
        if key in p:
            record[key] = p[key] or None
    if "active" in p:
        record["active"] = as_bool(p, "active")
    record["metadata"] = as_metadata(p, current=record["metadata"])
    record["updated"] = ctx.store.now()
    return _one(ctx, req, record)


@route("GET", "/v1/billing_portal/configurations")
def list_portal_configurations(ctx, req):
    p = req.params
    records = ctx.store.all("billing_portal.configuration")
    for key in ("active", "is_default"):
        if key in p:
            records = [r for r in records if r[key] == as_bool(p, key)]
    return _list(ctx, req, records, "/v1/billing_portal/configurations")


@route("POST", "/v1/billing_portal/sessions")
def create_portal_session(ctx, req):
    p = req.params
    customer = ctx.store.require("customer", p.get("customer"), param="customer")
    if p.get("configuration"):
        configuration = ctx.store.require("billing_portal.configuration", p["configuration"],
                                          param="configuration")
        if not configuration["active"]:
            raise StripeError(400, "This configuration is inactive.", param="configuration")
    else:
        configuration = next((c for c in ctx.store.all("billing_portal.configuration")
                              if c["is_default"] and c["active"]), None)
        if configuration is None:
            raise StripeError(400, "You can’t create a portal session in test mode until you "
                                   "save your customer portal settings in test mode at "
                                   "https://dashboard.stripe.com/test/settings/billing/portal.")
    return_url = p.get("return_url") or configuration["default_return_url"]
    record = objects.portal_session(ctx.store, base_url=ctx.base_url,
                                    customer_id=customer["id"], return_url=return_url,
                                    configuration_id=configuration["id"],
                                    flow=objects.portal_flow(p.get("flow_data")),
                                    locale=p.get("locale") or None)
    return _one(ctx, req, ctx.store.add("billing_portal.session", record))

