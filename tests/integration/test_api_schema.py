"""The API description and the API agree (issue 18, item 9): schemathesis generates requests from
`/api/openapi.json` and sends them to the running app, with and without a bearer token.

For every described operation: no 5xx, every status code and response body is the one described, and
every schema-valid request is accepted (2xx, or a documented refusal of the rules: 401, 403, 404, 409,
410, 429). Schema-invalid requests must be refused with a 4xx. With a token the calls target a real
subscription the caller owns, so they reach the views, not only the gate.

Bounded: a fixed number of examples per operation, mode and caller (`EXAMPLES`), a deadline per
example, no shrinking, so the whole file stays within about a minute.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.builders import purchased_subscription
from tests.licenses_support import idp_person, token_for

# Per operation, mode and caller (about 25 operations x 2 modes x 2 callers). Derandomized, so a run is
# repeatable; SCHEMATHESIS_EXAMPLES and SCHEMATHESIS_RANDOM=1 explore further by hand.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "20"))
RANDOM = bool(os.environ.get("SCHEMATHESIS_RANDOM"))
# Every example (one request and its checks) within this, or the test fails: nothing may hang.
DEADLINE = timedelta(seconds=10)
OWNER = "admin@contoso.example"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          positive_data_acceptance, negative_data_rejection]
# The Stripe webhook is authenticated by a signature over the body, which no generated request has;
# its refusals are covered in tests/integration/test_billing_webhooks.py.
SKIPPED = {("POST", "/stripe/webhook")}


# A schema-valid request may still be refused by the rules: not found (404), a conflict (409: no seats
# free, already assigned, domains to confirm), a used invitation (410), too many (429). Server errors are
# reported by not_a_server_error.
CONFIG = SchemathesisConfig.from_dict({"checks": {"positive_data_acceptance": {
    "expected-statuses": ["2xx", "401", "403", "404", "409", "410", "429", "5xx"]}}})


@pytest.fixture(scope="module")
def api_schema(stack) -> Any:
    return schemathesis.openapi.from_url(f"{stack.url}/api/openapi.json", config=CONFIG)


@pytest.fixture(scope="module")
def owned(stack) -> tuple[str, str]:
    """(a subscription the token's user owns, that token)."""
    owner = idp_person(stack, OWNER)
    subscription = purchased_subscription(stack, owner, quantity=50)
    return subscription.id, token_for(stack, OWNER)


def _operations(schema: Any) -> list[Any]:
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in SKIPPED:
            found.append(operation)
    return found


def _run_all(operations: list[Any], mode: GenerationMode, call: Callable[[Any], None]) -> None:
    """Run every operation; fail with the findings of all of them, one paragraph each."""
    failures = []
    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=DEADLINE, derandomize=not RANDOM, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            call(case)

        try:
            run()
        except Unsatisfiable:
            continue  # nothing to make invalid: the operation takes no parameters
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported together below
            failures.append(f"{_label(operation)}:\n{exc}")
    assert not failures, "\n\n".join(failures)


def _opaque_values_from_the_server(case: Any) -> None:
    """What no schema can describe is left out of valid-data cases: a continuation token is whatever the
    previous page returned, and a CSV file's content is a file, not a JSON value (the CSV parser has its
    own property tests: tests/unit/test_address_grammar.py). Invalid-data cases still send made-up ones,
    which must be refused with a 4xx."""
    if case.query:
        case.query.pop("continuation", None)
    assume(case.media_type != "text/csv")


def _label(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_with_a_token_every_operation_answers_as_described(stack, api_schema, owned, mode):
    subscription_id, token = owned
    started = time.monotonic()

    def call(case: Any) -> None:
        if mode is GenerationMode.POSITIVE:
            _opaque_values_from_the_server(case)
            if "subscription_id" in (case.path_parameters or {}):
                case.path_parameters["subscription_id"] = subscription_id
        headers = {"Authorization": f"Bearer {token}"}
        response = case.call(headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS, headers=headers)

    _run_all(_operations(api_schema), mode, call)
    print(f"schemathesis with a token ({mode.value}): {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_without_a_token_every_operation_answers_as_described(stack, api_schema, mode):
    started = time.monotonic()

    def call(case: Any) -> None:
        response = case.call(timeout=30)
        case.validate_response(response, checks=CHECKS)

    _run_all(_operations(api_schema), mode, call)
    print(f"schemathesis without a token ({mode.value}): {time.monotonic() - started:.1f} s")


def test_every_json_route_is_described_and_nothing_else(api_schema):
    described = {(op.method.upper(), op.path) for op in _operations(api_schema)} | SKIPPED
    from tests.integration.test_storage_outage import _routes

    json_routes = {(method, "/" + route.strip("/")) for method, route in _routes()
                   if route.startswith("v1/") or route in ("license", "license/keys", "health", "stripe/webhook")}
    assert json_routes <= described, sorted(json_routes - described)
    assert {path for _, path in described} <= {path for _, path in json_routes}, "described routes that do not exist"


