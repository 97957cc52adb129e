"""A small validator for Stripe's OpenAPI 3.0 component schemas (the vendored subset).

Handles what Stripe's schemas use: ``$ref`` to ``#/components/schemas/...``, ``type``,
OpenAPI's ``nullable`` (null is valid only where it is set), ``anyOf`` (expandable fields are
``anyOf: [id string, object]``), ``enum``, ``required``, ``properties``,
``additionalProperties`` (a schema, or true), ``items`` and ``maxLength``. ``format`` and the
``x-*`` extensions are annotations; ``x-expandableFields`` is used only to report better.

A ``$ref`` to a schema that is not vendored is an error the moment an instance reaches it: the
vendored set is exactly what the emulator's responses need, so a response that starts to use
more (say, an expanded ``payment_intent``) fails until that schema is vendored too.

With ``undocumented=True`` keys that the schema does not declare are reported as well (Stripe
declares no ``additionalProperties: false``, so plain validation would let a misspelt key
through); ``allowed_extra`` lists, per schema name, keys Stripe still sends but no longer
documents.
"""

from __future__ import annotations

import json
import pathlib
from decimal import Decimal
from typing import Any

SCHEMA_FILE = pathlib.Path(__file__).with_name("stripe_schemas") / "components.json"
_TYPES: dict[str, Any] = {
    "string": str, "boolean": bool, "array": list, "object": dict,
}


class StripeSchemas:
    def __init__(self, path: pathlib.Path = SCHEMA_FILE):
        document = json.loads(path.read_text())
        self.version = document["info"]["version"]
        self.schemas: dict[str, dict[str, Any]] = document["components"]["schemas"]

    def errors(self, instance: Any, name: str, *, undocumented: bool = False,
               allowed_extra: dict[str, set[str]] | None = None) -> list[str]:
        checker = _Check(self.schemas, undocumented, allowed_extra or {})
        checker.ref(instance, name, name)
        return checker.found

    def assert_valid(self, instance: Any, name: str, **options: Any) -> None:
        problems = self.errors(instance, name, **options)
        assert not problems, f"{name} does not match Stripe's schema:\n  " + "\n  ".join(
            problems[:25])


class _Check:
    def __init__(self, schemas, undocumented, allowed_extra):
        self.schemas = schemas
        self.undocumented = undocumented
        self.allowed_extra = allowed_extra
        self.found: list[str] = []

    def ref(self, instance, name, path):
        schema = self.schemas.get(name)
        if schema is None:
            self.found.append(f"{path}: reaches schema {name!r}, which is not vendored")
            return
        self.check(instance, schema, path, name)

    def valid(self, instance, schema, path, name):
        """Run a sub-check without recording its errors; True if it passed."""
        saved, self.found = self.found, []
        self.check(instance, schema, path, name)
        ok, self.found = not self.found, saved
        return ok

    def check(self, instance, schema, path, name):
        if "$ref" in schema:
            target = schema["$ref"].rsplit("/", 1)[-1]
            if instance is None and schema.get("nullable"):
                return
            self.ref(instance, target, path)
            return
        if instance is None:
            if not schema.get("nullable"):
                self.found.append(f"{path}: null is not allowed (not nullable)")
            return
        if "anyOf" in schema:
            if not any(self.valid(instance, option, path, name) for option in schema["anyOf"]):
                detail = []
                for option in schema["anyOf"]:
                    saved, self.found = self.found, []
                    self.check(instance, option, path, name)
                    detail.append("; ".join(self.found[:3]))
                    self.found = saved
                self.found.append(f"{path}: matches none of anyOf ({' | '.join(detail)})")
            return
        kind = schema.get("type")
        if kind == "integer":
            if not isinstance(instance, int) or isinstance(instance, bool):
                self.found.append(f"{path}: {instance!r} is not an integer")
                return
        elif kind == "number":
            if not isinstance(instance, (int, float)) or isinstance(instance, bool):
                self.found.append(f"{path}: {instance!r} is not a number")
                return
        elif kind in _TYPES and not isinstance(instance, _TYPES[kind]):
            self.found.append(f"{path}: {type(instance).__name__} {instance!r:.60} is not {kind}")
            return
        if "enum" in schema and instance not in schema["enum"]:
            self.found.append(f"{path}: {instance!r} is not one of {schema['enum']}")
        if isinstance(instance, str) and "maxLength" in schema and len(instance) > schema[
                "maxLength"]:
            self.found.append(f"{path}: longer than {schema['maxLength']}")
        if isinstance(instance, list) and "items" in schema:
            for index, element in enumerate(instance):
                self.check(element, schema["items"], f"{path}[{index}]", name)
        if isinstance(instance, dict):
            self.check_object(instance, schema, path, name)

    def check_object(self, instance, schema, path, name):
        for key in schema.get("required", []):
            if key not in instance:
                self.found.append(f"{path}: required property {key!r} is missing")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in instance.items():
            if key in properties:
                self.check(value, properties[key], f"{path}.{key}", name)
            elif isinstance(extra, dict):
                self.check(value, extra, f"{path}.{key}", name)
            elif (self.undocumented and properties and extra is not True
                  and key not in self.allowed_extra.get(name, set())):
                self.found.append(f"{path}: {key!r} is not a documented property of {name}")


# Keys Stripe still sends although the vendored (2026-07-29.dahlia) schemas no longer declare
# them; each is also in Stripe's own fixtures (openapi/fixtures3.json).
STILL_SENT = {"subscription_item": {"plan"}, "product": {"type"},
              "recurring": {"trial_period_days"}}


def wire(obj: Any) -> Any:
    """The JSON the emulator sent: the SDK turns `decimal` strings into Decimal; undo that."""
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    if isinstance(obj, dict):
        return {key: wire(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [wire(value) for value in obj]
    return str(obj) if isinstance(obj, Decimal) else obj


_SCHEMAS: list[StripeSchemas] = []


def assert_stripe_shape(obj: Any, schema_name: str) -> None:
    """Valid against the vendored schema, and no key the schema does not know."""
    if not _SCHEMAS:
        _SCHEMAS.append(StripeSchemas())
    _SCHEMAS[0].assert_valid(wire(obj), schema_name, undocumented=True, allowed_extra=STILL_SENT)
