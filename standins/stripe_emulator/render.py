"""Turning stored records into API JSON: default embedding, ``expand[]`` and API-version shapes.

Stripe embeds some objects by default (a subscription's items with their prices, an
invoice's lines) and returns others as ids until expanded. A few fields are absent until
expanded (``price.tiers``, ``checkout.session.line_items``). Pre-2025-03-31 API versions
put the billing period on the subscription and the subscription id on the invoice.
"""

import copy
from typing import Any

from .errors import StripeError
from .objects import plan_from_price
from .store import type_of

# API versions before this ("basil") use the legacy subscription/invoice shapes.
LEGACY_BEFORE = "2025-03-31"


def is_legacy_version(version):
    return bool(version) and version[:10] < LEGACY_BEFORE


def parse_expand(paths):
    """["subscription.latest_invoice", "line_items"] -> {"subscription": {"latest_invoice": {}}, ...}"""
    tree: dict[str, Any] = {}
    for path in paths or []:
        node = tree
        for part in str(path).split("."):
            node = node.setdefault(part, {})
    return tree


def render(store, record, expand=None, legacy=False):
    obj = _base(store, record)
    tree = expand if isinstance(expand, dict) else parse_expand(expand)
    _expand(store, record, obj, tree)
    return to_legacy(obj) if legacy else obj


def render_list(store, records, *, url, params, legacy=False, expand=None):
    """A Stripe list envelope with cursor pagination over newest-first records."""
    limit = int(params.get("limit") or 10)
    if not 1 <= limit <= 100:
        raise StripeError(400, "Limit must be between 1 and 100.", code="parameter_invalid_integer",
                          param="limit")
    ids = [r["id"] for r in records]
    start = 0
    if params.get("starting_after"):
        if params["starting_after"] not in ids:
            raise StripeError(400, f"No such object: '{params['starting_after']}'",
                              code="resource_missing", param="starting_after")
        start = ids.index(params["starting_after"]) + 1
    end = len(records)
    if params.get("ending_before"):
        if params["ending_before"] not in ids:
            raise StripeError(400, f"No such object: '{params['ending_before']}'",
                              code="resource_missing", param="ending_before")
        end = ids.index(params["ending_before"])
        start = max(0, end - limit)
    page = records[start:min(end, start + limit)]
    tree = parse_expand(expand if expand is not None else params.get("expand"))
    item_tree = tree.get("data", {})
    return {
        "object": "list",
        "data": [render(store, r, item_tree, legacy) for r in page],
        "has_more": start + limit < end,
        "url": url,
    }


def _public(record):
    return {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}


def _base(store, record):
    obj = _public(record)
    kind = record.get("object")
    if kind == "price":
        obj.pop("tiers", None)
    elif kind == "subscription_item":
        price = store.get("price", record["price"])
        obj["price"] = render(store, price)
        obj["plan"] = plan_from_price(price)
    elif kind == "subscription":
        items = [store.get("subscription_item", i) for i in record["_items"]]
        obj["items"] = {
            "object": "list", "data": [render(store, item) for item in items],
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={record['id']}",
        }
        pending = record.get("_pending_update")
        if pending and isinstance(obj.get("pending_update"), dict):
            # pending_if_incomplete: the items as they will be once the open invoice is paid.
            obj["pending_update"]["subscription_items"] = [
                render(store, pending["records"][item_id]) for item_id in pending["items"]]
    elif kind == "invoice":
        obj["lines"] = {
            "object": "list", "data": [_public(line) for line in record["_lines"]],
            "has_more": False,
            "url": f"/v1/invoices/{record['id']}/lines",
        }
    return obj


def _virtual(store, record, key):
    """Fields that exist only when expanded."""
    kind = record.get("object")
    if kind == "price" and key == "tiers":
        return copy.deepcopy(record.get("tiers"))
    if kind == "checkout.session" and key == "line_items":
        data = []
        for item in record["_line_items"]:
            line = dict(item)
            line["price"] = render(store, store.get("price", item["price"]))
            data.append(line)
        return {"object": "list", "data": data, "has_more": False,
                "url": f"/v1/checkout/sessions/{record['id']}/line_items"}
    if kind == "customer" and key == "tax_ids":
        ids = list(reversed(record.get("_tax_ids") or []))
        return {"object": "list", "data": [render(store, store.get("tax_id", i)) for i in ids],
                "has_more": False, "url": f"/v1/customers/{record['id']}/tax_ids"}
    if kind == "customer" and key == "tax":
        country = (record.get("address") or {}).get("country")
        return {"automatic_tax": "supported" if country else "unrecognized_location",
                "ip_address": None,
                "location": {"country": country, "source": "billing_address", "state": None}
                if country else None,
                "provider": "stripe"}
    return _NOT_VIRTUAL


_NOT_VIRTUAL = object()


def _expand(store, record, obj, tree):
    for key, subtree in tree.items():
        if obj.get("object") == "list" and key == "data":
            for element in obj["data"]:
                source = store.find(element.get("id")) or element
                _expand(store, source, element, subtree)
            continue
        virtual = _virtual(store, record, key)
        if virtual is not _NOT_VIRTUAL:
            obj[key] = virtual
            if isinstance(virtual, dict):
                _expand(store, record, virtual, subtree)
            continue
        if key not in obj:
            raise StripeError(400, f"This property cannot be expanded ({key}).",
                              code="parameter_invalid", param="expand")
        value = obj[key]
        if isinstance(value, str) and type_of(value):
            target = store.find(value)
            if target is not None:
                obj[key] = render(store, target, subtree)
        elif isinstance(value, dict):
            # Already embedded (e.g. items.data.price): expand further inside it.
            source = store.find(value.get("id")) or record
            _expand(store, source, value, subtree)
        elif isinstance(value, list):
            # An array (a schedule's phases, their items): expand inside each element.
            for index, element in enumerate(value):
                if isinstance(element, str) and type_of(element):
                    target = store.find(element)
                    if target is not None:
                        value[index] = render(store, target, subtree)
                elif isinstance(element, dict):
                    _expand(store, store.find(element.get("id")) or record, element, subtree)
        elif value is None:
            continue
        else:
            raise StripeError(400, f"This property cannot be expanded ({key}).",
                              code="parameter_invalid", param="expand")


def to_legacy(obj):
    """Rewrite current shapes into pre-2025-03-31 ones, anywhere in the tree."""
    if isinstance(obj, list):
        return [to_legacy(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    obj = {k: to_legacy(v) for k, v in obj.items()}
    kind = obj.get("object")
    if kind == "subscription":
        items = (obj.get("items") or {}).get("data") or []
        first = items[0] if items else {}
        obj["current_period_start"] = first.get("current_period_start")
        obj["current_period_end"] = first.get("current_period_end")
        for item in items:
            item.pop("current_period_start", None)
            item.pop("current_period_end", None)
        obj["plan"] = first.get("plan")
        obj["quantity"] = first.get("quantity")
    elif kind == "invoice":
        details = (obj.pop("parent", None) or {}).get("subscription_details") or {}
        obj["subscription"] = details.get("subscription")
        obj["subscription_details"] = {"metadata": details.get("metadata")}
        obj["paid"] = obj.get("status") == "paid"
        obj["charge"] = None
        obj["payment_intent"] = None
        obj["total_tax_amounts"] = _legacy_taxes(obj.pop("total_taxes", None))
        obj["tax"] = sum(t["amount"] for t in obj["total_tax_amounts"]) if obj[
            "total_tax_amounts"] else None
    elif kind == "line_item" and isinstance(obj.get("parent"), dict):
        details = obj.pop("parent").get("subscription_item_details") or {}
        obj["type"] = "subscription"
        obj["proration"] = details.get("proration", False)
        obj["subscription_item"] = details.get("subscription_item")
        obj["subscription"] = details.get("subscription")
        obj["tax_amounts"] = _legacy_taxes(obj.pop("taxes", None))
    return obj


def _legacy_taxes(taxes):
    """total_taxes/taxes (2025-03-31 and later) as the older total_tax_amounts/tax_amounts."""
    return [{"amount": t["amount"], "inclusive": t["tax_behavior"] == "inclusive",
             "tax_rate": (t.get("tax_rate_details") or {}).get("tax_rate"),
             "taxability_reason": t["taxability_reason"], "taxable_amount": t["taxable_amount"]}
            for t in taxes or []]
