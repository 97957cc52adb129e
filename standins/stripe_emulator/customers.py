"""Customers' billing details: name, address, invoice custom fields, tax exemption and tax IDs.

Stripe's rules for these, enforced the same way here: at most 4 invoice custom fields, each
name at most 40 and each value at most 140 characters (an empty ``custom_fields`` clears
them); ``tax_exempt`` is none, exempt or reverse; ``tax_id_data`` (create only) adds tax IDs
exactly as ``POST /v1/customers/{id}/tax_ids`` does, which emits ``customer.tax_id.created``.
"""

from . import objects, tax_ids
from .errors import StripeError
from .forms import as_list, as_metadata

ADDRESS_FIELDS = ("line1", "line2", "postal_code", "city", "state", "country")
TAX_EXEMPT = ("none", "exempt", "reverse")
MAX_CUSTOM_FIELDS, MAX_FIELD_NAME, MAX_FIELD_VALUE = 4, 40, 140


def create(ctx, params):
    record = objects.customer(ctx.store, email=params.get("email"), name=params.get("name"),
                              description=params.get("description"),
                              metadata=as_metadata(params),
                              preferred_locales=as_list(params.get("preferred_locales")))
    apply_details(record, params)
    ctx.store.add("customer", record)
    ctx.events.emit("customer.created", record)
    for index, data in enumerate(as_list(params.get("tax_id_data"))):
        if not isinstance(data, dict):
            raise StripeError(400, "Invalid tax_id_data.", code="parameter_invalid",
                              param=f"tax_id_data[{index}]")
        add_tax_id(ctx, record, data.get("type"), data.get("value"),
                   param=f"tax_id_data[{index}][value]")
    return record


def update(ctx, record, params):
    before = ctx.events.snapshot(record)
    for key in ("email", "name", "description", "phone"):
        if key in params:
            record[key] = params[key] or None
    apply_details(record, params)
    if isinstance(params.get("invoice_settings"), dict):
        settings = params["invoice_settings"]
        if "default_payment_method" in settings:
            record["invoice_settings"]["default_payment_method"] = (
                settings["default_payment_method"] or None)
    record["metadata"] = as_metadata(params, current=record["metadata"])
    ctx.events.emit("customer.updated", record, previous=before)
    return record


def apply_details(record, params):
    """The fields create and update share: address, locales, custom fields, tax exemption."""
    if "address" in params:
        record["address"] = address(params["address"], "address")
    if "preferred_locales" in params:
        record["preferred_locales"] = as_list(params["preferred_locales"])
    if "phone" in params:
        record["phone"] = params["phone"] or None
    if "tax_exempt" in params:
        if params["tax_exempt"] not in TAX_EXEMPT:
            raise StripeError(400, f"Invalid tax_exempt: must be one of {', '.join(TAX_EXEMPT)}",
                              code="parameter_invalid", param="tax_exempt")
        record["tax_exempt"] = params["tax_exempt"]
    settings = params.get("invoice_settings")
    if isinstance(settings, dict) and "custom_fields" in settings:
        record["invoice_settings"]["custom_fields"] = custom_fields(settings["custom_fields"])


def address(raw, param):
    """An address hash (every field present, country upper-cased); "" clears it."""
    if raw in ("", None):
        return None
    if not isinstance(raw, dict):
        raise StripeError(400, "Invalid hash", code="parameter_invalid", param=param)
    unknown = sorted(set(raw) - set(ADDRESS_FIELDS))
    if unknown:
        raise StripeError(400, f"Received unknown parameter: {param}[{unknown[0]}]",
                          code="parameter_unknown", param=f"{param}[{unknown[0]}]")
    result = {name: (raw.get(name) or None) for name in ADDRESS_FIELDS}
    if result["country"]:
        country = result["country"].strip().upper()
        if len(country) != 2 or not country.isalpha():
            raise StripeError(400, "Country must be a two-letter ISO 3166-1 code.",
                              code="parameter_invalid", param=f"{param}[country]")
        result["country"] = country
    return result


def custom_fields(raw):
    """invoice_settings[custom_fields]: a list of {name, value}, or "" to clear."""
    if raw in ("", None):
        return None
    fields = as_list(raw)
    param = "invoice_settings[custom_fields]"
    if len(fields) > MAX_CUSTOM_FIELDS:
        raise StripeError(400, f"You can have at most {MAX_CUSTOM_FIELDS} custom fields on an "
                               f"invoice.", code="parameter_invalid", param=param)
    result = []
    for index, field in enumerate(fields):
        if not isinstance(field, dict):
            raise StripeError(400, "Invalid hash", code="parameter_invalid",
                              param=f"{param}[{index}]")
        for key, limit in (("name", MAX_FIELD_NAME), ("value", MAX_FIELD_VALUE)):
            text = field.get(key)
            if not text:
                raise StripeError(400, f"Missing required param: {param}[{index}][{key}].",
                                  code="parameter_missing", param=f"{param}[{index}][{key}]")
            if len(text) > limit:
                raise StripeError(400, f"Invalid string: {text[:20]}...; must be at most "
                                       f"{limit} characters", code="string_length_exceeds",
                                  param=f"{param}[{index}][{key}]")
        result.append({"name": field["name"], "value": field["value"]})
    return result or None


# -- tax IDs -----------------------------------------------------------------------------------

def add_tax_id(ctx, customer, tax_type, value, param="value"):
    normal, country, format_ok = tax_ids.check(tax_type, value, param)
    record = objects.tax_id(ctx.store, customer_id=customer["id"], tax_type=tax_type,
                            value=normal, country=country,
                            verification=tax_ids.verification(format_ok, customer))
    ctx.store.add("tax_id", record)
    customer.setdefault("_tax_ids", []).append(record["id"])
    ctx.events.emit("customer.tax_id.created", record)
    return record


def tax_id_of(ctx, customer, tax_id):
    record = ctx.store.require("tax_id", tax_id)
    if record["customer"] != customer["id"] or tax_id not in customer.get("_tax_ids", []):
        raise StripeError(404, f"No such tax ID: '{tax_id}'", code="resource_missing",
                          param="id")
    return record


def delete_tax_id(ctx, customer, tax_id):
    record = tax_id_of(ctx, customer, tax_id)
    customer["_tax_ids"].remove(tax_id)
    ctx.events.emit("customer.tax_id.deleted", record)
    ctx.store.objects["tax_id"].pop(tax_id, None)
    return {"id": tax_id, "object": "tax_id", "deleted": True}


def tax_ids_of(ctx, customer):
    """Newest first, as Stripe lists them."""
    return [ctx.store.get("tax_id", i) for i in reversed(customer.get("_tax_ids") or [])]
