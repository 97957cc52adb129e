"""Builders for stored records, one per Stripe object type, with every field Stripe sends.

Records hold references as ids (as Stripe stores them); ``render.py`` embeds what Stripe
embeds by default and what the caller expands. Keys starting with "_" are the emulator's
own bookkeeping and never leave the process.
"""

import copy

from .store import Store


def product(store, *, name, product_id=None, description=None, metadata=None, active=True):
    now = store.now()
    return {
        "id": product_id or Store.new_id("prod_", 14), "object": "product", "active": active,
        "created": now, "default_price": None, "description": description, "images": [],
        "livemode": False, "marketing_features": [], "metadata": metadata or {}, "name": name,
        "package_dimensions": None, "shippable": None, "statement_descriptor": None,
        "tax_code": None, "type": "service", "unit_label": None, "updated": now, "url": None,
    }


def price(store, *, product_id, currency, unit_amount=None, billing_scheme="per_unit",
          tiers=None, tiers_mode=None, recurring=None, lookup_key=None, nickname=None,
          metadata=None, active=True, tax_behavior="unspecified"):
    return {
        "id": Store.new_id("price_"), "object": "price", "active": active,
        "billing_scheme": billing_scheme, "created": store.now(), "currency": currency,
        "custom_unit_amount": None, "livemode": False, "lookup_key": lookup_key,
        "metadata": metadata or {}, "nickname": nickname, "product": product_id,
        "recurring": recurring, "tax_behavior": tax_behavior, "tiers_mode": tiers_mode,
        "transform_quantity": None, "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
        # Stored always, rendered only when expanded (see render.py).
        "tiers": tiers,
    }


def recurring(interval, interval_count=1, trial_period_days=None):
    return {"interval": interval, "interval_count": interval_count, "meter": None,
            "usage_type": "licensed", "trial_period_days": trial_period_days}


def tier(up_to, unit_amount=None, flat_amount=None):
    return {"flat_amount": flat_amount,
            "flat_amount_decimal": None if flat_amount is None else str(flat_amount),
            "unit_amount": unit_amount,
            "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
            "up_to": up_to}


def plan_from_price(price_record):
    """Subscription items still carry the legacy ``plan`` mirror of their price."""
    rec = price_record.get("recurring") or {}
    return {
        "id": price_record["id"], "object": "plan", "active": price_record["active"],
        "amount": price_record["unit_amount"],
        "amount_decimal": price_record["unit_amount_decimal"],
        "billing_scheme": price_record["billing_scheme"], "created": price_record["created"],
        "currency": price_record["currency"], "interval": rec.get("interval"),
        "interval_count": rec.get("interval_count"), "livemode": False,
        "metadata": price_record["metadata"], "meter": None,
        "nickname": price_record["nickname"], "product": price_record["product"],
        "tiers_mode": price_record["tiers_mode"], "transform_usage": None,
        "trial_period_days": rec.get("trial_period_days"), "usage_type": "licensed",
    }


def customer(store, *, email=None, name=None, description=None, metadata=None,
             preferred_locales=None):
    return {
        "id": Store.new_id("cus_", 14), "object": "customer", "address": None, "balance": 0,
        "created": store.now(), "currency": None, "default_source": None, "delinquent": False,
        "description": description, "discount": None, "email": email,
        "invoice_prefix": Store.new_id("", 8).upper(),
        "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                             "footer": None, "rendering_options": None},
        "livemode": False, "metadata": metadata or {}, "name": name,
        "next_invoice_sequence": 1, "phone": None, "preferred_locales": preferred_locales or [],
        "shipping": None, "tax_exempt": "none", "test_clock": None,
    }


def checkout_session(store, *, base_url, mode, line_items, success_url, cancel_url,
                     client_reference_id, customer_id, customer_email, metadata, locale,
                     allow_promotion_codes, subscription_data, currency, amount_subtotal):
    session_id = Store.new_id("cs_test_")
    now = store.now()
    return {
        "id": session_id, "object": "checkout.session", "adaptive_pricing": {"enabled": False},
        "after_expiration": None, "allow_promotion_codes": allow_promotion_codes,
        "amount_subtotal": amount_subtotal, "amount_total": amount_subtotal,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None,
                          "status": None},
        "billing_address_collection": None, "cancel_url": cancel_url,
        "client_reference_id": client_reference_id, "client_secret": None,
        "collected_information": None, "consent": None, "consent_collection": None,
        "created": now, "currency": currency, "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                        "terms_of_service_acceptance": None},
        "customer": customer_id, "customer_account": None,
        "customer_creation": None if mode == "subscription" else "if_required",
        "customer_details": None, "customer_email": customer_email, "discounts": [],
        "expires_at": now + 24 * 3600, "integration_identifier": None, "invoice": None,
        "invoice_creation": None, "livemode": False, "locale": locale,
        "managed_payments": {"enabled": False}, "metadata": metadata, "mode": mode,
        "origin_context": None, "payment_intent": None, "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card", "sepa_debit"], "payment_status": "unpaid",
        "permissions": None, "phone_number_collection": {"enabled": False},
        "recovered_from": None, "saved_payment_method_options": None,
        "setup_intent": None, "shipping_address_collection": None, "shipping_cost": None,
        "shipping_options": [], "status": "open", "submit_type": None, "subscription": None,
        "success_url": success_url,
        "tax_id_collection": {"enabled": False, "required": "never"},
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page", "url": f"{base_url}/checkout/{session_id}",
        "wallet_options": None,
        # Not rendered: line items are only returned when expanded, as in Stripe.
        "_line_items": line_items,
        "_subscription_data": subscription_data,
    }


def checkout_line_item(price_record, quantity, amount, description):
    return {
        "id": Store.new_id("li_"), "object": "item",
        "adjustable_quantity": None, "amount_discount": 0, "amount_subtotal": amount,
        "amount_tax": 0, "amount_total": amount, "currency": price_record["currency"],
        "description": description, "metadata": {}, "price": price_record["id"],
        "quantity": quantity,
    }


def subscription(store, *, customer_id, currency, status, metadata, trial_start=None,
                 trial_end=None, description=None, collection_method="charge_automatically",
                 days_until_due=None, payment_settings=None, automatic_tax=False):
    now = store.now()
    return {
        "id": Store.new_id("sub_"), "object": "subscription", "application": None,
        "application_fee_percent": None,
        "automatic_tax": subscription_automatic_tax(automatic_tax),
        "billing_cycle_anchor": trial_end or now, "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "classic"}, "billing_schedules": [],
        "billing_thresholds": None, "cancel_at": None, "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": collection_method, "created": now, "currency": currency,
        "customer": customer_id, "customer_account": None, "days_until_due": days_until_due,
        "default_payment_method": None, "default_source": None, "default_tax_rates": [],
        "description": description, "discounts": [], "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "latest_invoice": None, "livemode": False, "managed_payments": None,
        "metadata": metadata, "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None, "pause_collection": None,
        "payment_settings": payment_settings or {
            "payment_method_options": None, "payment_method_types": None,
            "save_default_payment_method": "off"},
        "pending_invoice_item_interval": None, "pending_setup_intent": None,
        "pending_update": None, "schedule": None, "start_date": now, "status": status,
        "test_clock": None, "transfer_data": None, "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": trial_start,
        "_items": [],               # subscription_item ids, in order
        "_pending_prorations": [],  # invoice lines waiting for the next invoice
    }


def subscription_automatic_tax(enabled):
    return {"disabled_reason": None, "enabled": bool(enabled),
            "liability": {"type": "self"} if enabled else None}


# Every payment method Stripe lists under payment_method_options; unset ones are null.
PAYMENT_METHOD_OPTION_KEYS = ("acss_debit", "bancontact", "card", "customer_balance", "konbini",
                              "payto", "pix", "sepa_debit", "upi", "us_bank_account")


def payment_method_options(customer_balance=None):
    options: dict = dict.fromkeys(PAYMENT_METHOD_OPTION_KEYS)
    options["customer_balance"] = customer_balance
    return options


def subscription_item(store, *, subscription_id, price_id, quantity, period_start,
                      period_end, metadata=None):
    return {
        "id": Store.new_id("si_", 14), "object": "subscription_item",
        "billing_thresholds": None, "created": store.now(),
        "current_period_end": period_end, "current_period_start": period_start,
        "discounts": [], "metadata": metadata or {}, "plan": None, "price": price_id,
        "quantity": quantity, "subscription": subscription_id, "tax_rates": [],
    }


def _schedule_tax(enabled):
    return {"disabled_reason": None, "enabled": bool(enabled),
            "liability": {"type": "self"} if enabled else None}


def schedule_phase_item(*, price_id, quantity, metadata=None):
    return {"billing_thresholds": None, "discounts": [], "metadata": metadata or {},
            "price": price_id, "quantity": quantity, "tax_rates": []}


def schedule_phase(*, start, end, items, currency, proration_behavior="create_prorations",
                   automatic_tax=False, metadata=None):
    """One phase of a subscription schedule: its items (price ids and quantities) from
    ``start`` to ``end``."""
    return {
        "add_invoice_items": [], "application_fee_percent": None,
        "automatic_tax": _schedule_tax(automatic_tax), "billing_cycle_anchor": None,
        "billing_thresholds": None, "collection_method": None, "currency": currency,
        "default_payment_method": None, "default_tax_rates": [], "description": None,
        "discounts": [], "end_date": end, "invoice_settings": None, "items": items,
        "metadata": metadata or {}, "on_behalf_of": None,
        "proration_behavior": proration_behavior, "start_date": start,
        "transfer_data": None, "trial_end": None,
    }


def subscription_schedule(store, *, subscription_record, phases):
    """A schedule managing ``subscription_record`` (created ``from_subscription``)."""
    sub = subscription_record
    first = phases[0]
    return {
        "id": Store.new_id("sub_sched_"), "object": "subscription_schedule",
        "application": None, "billing_mode": copy.deepcopy(sub["billing_mode"]),
        "canceled_at": None, "completed_at": None, "created": store.now(),
        "current_phase": {"end_date": first["end_date"], "start_date": first["start_date"]},
        "customer": sub["customer"], "customer_account": None,
        "default_settings": {
            "application_fee_percent": None,
            "automatic_tax": _schedule_tax(sub["automatic_tax"]["enabled"]),
            "billing_cycle_anchor": "automatic", "billing_thresholds": None,
            "collection_method": sub["collection_method"], "default_payment_method": None,
            "description": None,
            "invoice_settings": {"account_tax_ids": None, "days_until_due": sub["days_until_due"],
                                 "issuer": {"type": "self"}},
            "on_behalf_of": None, "transfer_data": None},
        "end_behavior": "release", "livemode": False, "metadata": {}, "phases": phases,
        "released_at": None, "released_subscription": None, "status": "active",
        "subscription": sub["id"], "test_clock": None,
    }


def invoice(store, *, customer_record, subscription_record, billing_reason, lines,
            period_start, period_end, base_url, account_name="SecureMailMerge GmbH",
            account_country="DE"):
    invoice_id = Store.new_id("in_")
    total = sum(line["amount"] for line in lines)
    for line in lines:
        line["invoice"] = invoice_id
    number = f"{customer_record['invoice_prefix']}-{customer_record['next_invoice_sequence']:04d}"
    customer_record["next_invoice_sequence"] += 1
    now = store.now()
    return {
        "id": invoice_id, "object": "invoice", "account_country": account_country,
        "account_name": account_name, "account_tax_ids": None,
        "amount_due": max(total, 0), "amount_overpaid": 0, "amount_paid": 0,
        "amount_paid_off_stripe": 0, "amount_remaining": max(total, 0), "amount_shipping": 0,
        "application": None,
        "attempt_count": 0, "attempted": False, "auto_advance": True,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None,
                          "provider": None, "status": None},
        "automatically_finalizes_at": None, "billing_reason": billing_reason,
        "collection_method": subscription_record["collection_method"], "created": now,
        "currency": subscription_record["currency"], "custom_fields": None,
        "customer": customer_record["id"], "customer_account": None,
        "customer_address": customer_record["address"],
        "customer_email": customer_record["email"], "customer_name": customer_record["name"],
        "customer_phone": None, "customer_shipping": None,
        "customer_tax_exempt": customer_record["tax_exempt"],
        "customer_tax_ids": [], "default_payment_method": None, "default_source": None,
        "default_tax_rates": [], "description": None, "discounts": [], "due_date": None,
        "effective_at": None, "ending_balance": None, "footer": None, "from_invoice": None,
        "hosted_invoice_url": f"{base_url}/invoice/{invoice_id}",
        "invoice_pdf": f"{base_url}/invoice/{invoice_id}/pdf",
        "issuer": {"type": "self"}, "last_finalization_error": None, "latest_revision": None,
        "livemode": False, "metadata": {}, "next_payment_attempt": None, "number": number,
        "on_behalf_of": None,
        "parent": {"quote_details": None, "type": "subscription_details",
                   "subscription_details": {"metadata": dict(subscription_record["metadata"]),
                                            "subscription": subscription_record["id"]}},
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": copy.deepcopy(
                subscription_record["payment_settings"]["payment_method_options"]),
            "payment_method_types": copy.deepcopy(
                subscription_record["payment_settings"]["payment_method_types"])},
        "period_end": period_end, "period_start": period_start,
        "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": {"amount_tax_display": None, "pdf": {"page_size": "auto"},
                      "template": None, "template_version": None},
        "shipping_cost": None, "shipping_details": None,
        "starting_balance": customer_record["balance"],
        "statement_descriptor": None, "status": "draft",
        "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                               "paid_at": None, "voided_at": None},
        "subtotal": total, "subtotal_excluding_tax": total, "test_clock": None,
        "total": total, "total_discount_amounts": [], "total_excluding_tax": total,
        "total_pretax_credit_amounts": [], "total_taxes": [], "webhooks_delivered_at": None,
        "_lines": lines,
    }


def invoice_line(*, subscription_id, item_record, price_record, quantity, amount,
                 description, period_start, period_end, proration=False, unit_amount=None):
    """A line of a subscription invoice; prorations are backed by an invoice item (``ii_``)."""
    if unit_amount is None:
        unit_amount = amount // max(quantity, 1)
    return {
        "id": Store.new_id("il_"), "object": "line_item", "amount": amount,
        "currency": price_record["currency"], "description": description,
        "discount_amounts": [], "discountable": True, "discounts": [], "invoice": None,
        "livemode": False, "metadata": {},
        "parent": {"invoice_item_details": None, "type": "subscription_item_details",
                   "subscription_item_details": {
                       "invoice_item": Store.new_id("ii_") if proration else None,
                       "proration": proration,
                       "proration_details": {"credited_items": None},
                       "subscription": subscription_id,
                       "subscription_item": item_record["id"]}},
        "period": {"end": period_end, "start": period_start},
        "pretax_credit_amounts": [],
        "pricing": {"price_details": {"price": price_record["id"],
                                      "product": price_record["product"]},
                    "type": "price_details",
                    "unit_amount_decimal": str(unit_amount)},
        "quantity": quantity, "quantity_decimal": str(quantity),
        "subscription": subscription_id, "subtotal": amount, "taxes": [],
    }


def tax_rate(store, *, country, percentage, tax_type, display_name):
    """A tax rate as Stripe Tax creates them for automatic tax (tax-exclusive, per country)."""
    return {
        "id": Store.new_id("txr_"), "object": "tax_rate", "active": True, "country": country,
        "created": store.now(), "description": None, "display_name": display_name,
        "effective_percentage": float(percentage), "flat_amount": None, "inclusive": False,
        "jurisdiction": country, "jurisdiction_level": "country", "livemode": False,
        "metadata": {}, "percentage": float(percentage), "rate_type": "percentage",
        "state": None, "tax_type": tax_type,
    }


def tax_id(store, *, customer_id, tax_type, value, country, verification):
    return {
        "id": Store.new_id("txi_"), "object": "tax_id", "country": country,
        "created": store.now(), "customer": customer_id, "customer_account": None,
        "livemode": False,
        "owner": {"customer": customer_id, "customer_account": None, "type": "customer"},
        "type": tax_type, "value": value, "verification": verification,
    }


def funding_instructions(*, country, currency, iban):
    """Customer balance funding instructions: one virtual IBAN for SEPA credit transfers."""
    return {
        "object": "funding_instructions", "bank_transfer": {
            "country": country, "type": "eu_bank_transfer",
            "financial_addresses": [{"type": "iban", "iban": iban, "supported_networks": ["sepa"]}]},
        "currency": currency, "funding_type": "bank_transfer", "livemode": False,
    }


def event(store, *, event_type, api_version, data, request_id, idempotency_key,
          pending_webhooks):
    return {
        "id": Store.new_id("evt_"), "object": "event", "api_version": api_version,
        "created": store.now(), "data": data, "livemode": False,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": event_type,
    }


def portal_configuration(store, *, features, business_profile, default_return_url,
                         metadata, name=None, is_default=False):
    now = store.now()
    return {
        "id": Store.new_id("bpc_"), "object": "billing_portal.configuration",
        "active": True, "application": None, "business_profile": business_profile,
        "created": now, "default_return_url": default_return_url, "features": features,
        "is_default": is_default, "livemode": False,
        "login_page": {"enabled": False, "url": None}, "metadata": metadata, "name": name,
        "updated": now,
    }


def portal_business_profile(raw=None):
    raw = raw if isinstance(raw, dict) else {}
    return {"headline": raw.get("headline") or None,
            "privacy_policy_url": raw.get("privacy_policy_url") or None,
            "terms_of_service_url": raw.get("terms_of_service_url") or None}


def portal_features(raw=None, current=None):
    """The full ``features`` object Stripe returns, every feature present with its defaults.

    ``raw`` holds the (decoded, string-valued) request parameters; ``current`` the stored
    features when updating. Booleans arrive as "true"/"false" on the wire.
    """
    raw = raw if isinstance(raw, dict) else {}
    base = current or {
        "customer_update": {"allowed_updates": [], "enabled": False},
        "invoice_history": {"enabled": False},
        "payment_method_update": {"enabled": False, "payment_method_configuration": None},
        "subscription_cancel": {
            "cancellation_reason": {"enabled": False, "options": []}, "enabled": False,
            "mode": "at_period_end", "proration_behavior": "none"},
        "subscription_update": {
            "billing_cycle_anchor": None, "default_allowed_updates": [], "enabled": False,
            "products": None, "proration_behavior": "none",
            "schedule_at_period_end": {"conditions": []},
            "trial_update_behavior": "end_trial"},
    }
    features = {key: dict(value) for key, value in base.items()}

    def flag(value):
        return value is True or value == "true"

    def listed(value):
        if isinstance(value, dict):
            return list(value.values())
        return list(value) if isinstance(value, list) else ([] if value in (None, "") else [value])

    for name, given in raw.items():
        if name not in features or not isinstance(given, dict):
            continue
        feature = features[name]
        if "enabled" in given:
            feature["enabled"] = flag(given["enabled"])
        if name == "customer_update" and "allowed_updates" in given:
            feature["allowed_updates"] = listed(given["allowed_updates"])
        if name == "payment_method_update" and "payment_method_configuration" in given:
            feature["payment_method_configuration"] = given["payment_method_configuration"] or None
        if name == "subscription_cancel":
            for key in ("mode", "proration_behavior"):
                if given.get(key):
                    feature[key] = given[key]
            reason = given.get("cancellation_reason")
            if isinstance(reason, dict):
                feature["cancellation_reason"] = {
                    "enabled": flag(reason.get("enabled")),
                    "options": listed(reason.get("options"))}
        if name == "subscription_update":
            for key in ("proration_behavior", "billing_cycle_anchor", "trial_update_behavior"):
                if given.get(key):
                    feature[key] = given[key]
            if "default_allowed_updates" in given:
                feature["default_allowed_updates"] = listed(given["default_allowed_updates"])
            if "products" in given:
                feature["products"] = [
                    {"adjustable_quantity": {"enabled": False, "maximum": None, "minimum": 1},
                     "prices": listed(product.get("prices")), "product": product.get("product")}
                    for product in listed(given["products"]) if isinstance(product, dict)] or None
    return features


def portal_flow(flow_data):
    """The session's ``flow`` from ``flow_data`` (a deep link), or None."""
    if not isinstance(flow_data, dict) or not flow_data.get("type"):
        return None
    after = flow_data.get("after_completion") or {}
    after_type = after.get("type") or "portal_homepage"
    redirect = after.get("redirect") or {}
    confirmation = after.get("hosted_confirmation") or {}
    flow = {
        "after_completion": {
            "hosted_confirmation": ({"custom_message": confirmation.get("custom_message")}
                                    if after_type == "hosted_confirmation" else None),
            "redirect": ({"return_url": redirect.get("return_url")}
                         if after_type == "redirect" else None),
            "type": after_type},
        "subscription_cancel": None, "subscription_update": None,
        "subscription_update_confirm": None, "type": flow_data["type"]}
    for key in ("subscription_cancel", "subscription_update"):
        if flow_data["type"] == key and isinstance(flow_data.get(key), dict):
            flow[key] = {"subscription": flow_data[key].get("subscription")}
            if key == "subscription_cancel":
                flow[key]["retention"] = None
    return flow


def portal_session(store, *, base_url, customer_id, return_url, configuration_id, flow,
                   locale):
    session_id = Store.new_id("bps_")
    return {
        "id": session_id, "object": "billing_portal.session",
        "configuration": configuration_id, "created": store.now(), "customer": customer_id,
        "customer_account": None, "flow": flow, "livemode": False, "locale": locale,
        "on_behalf_of": None, "return_url": return_url,
        "url": f"{base_url}/billing_portal/{session_id}",
    }
