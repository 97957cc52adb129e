"""Helpers for the license tests: identity-provider users as owners, the JSON API with bearer tokens."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from services.audit import Actor
from services.seat_change import Context
from services.unit_of_work import UnitOfWork
from services.web_session import Person
from standins.identity_provider.client import issue_token, list_users


def idp_person(stack, email: str) -> Person:
    """The identity provider's real user (tid, oid), so a token or browser sign-in is the owner."""
    for user in list_users(stack.identity_provider.url, verify=str(stack.identity_provider.ca_bundle)):
        if user["preferred_username"] == email:
            return Person(tid=user["tenant_id"], oid=user["oid"], name=user["name"], email=user.get("email") or email)
    raise LookupError(email)


def token_for(stack, email: str) -> str:
    return issue_token(stack.identity_provider.url, email, audience=stack.settings.api_audiences[0],
                       scope="access_as_user", verify=str(stack.identity_provider.ca_bundle))


def context(stack, storage=None, person: Person | None = None) -> Context:
    who = person or Person("t", "o", "Test", "tester@contoso.example")
    return Context(uow=UnitOfWork(storage or stack.storage()), settings=stack.settings,
                   actor=Actor(tid=who.tid, oid=who.oid, email=who.email, name=who.name))


def call(base_url: str, method: str, path: str, token: str | None = None, body: Any = None,
         content_type: str = "application/json", headers: dict | None = None,
         timeout: float = 60) -> tuple[int, Any, dict]:
    """(status, parsed JSON or text, headers) of one API call."""
    data = None
    if body is not None:
        data = (body if isinstance(body, bytes) else json.dumps(body).encode() if content_type == "application/json"
                else body.encode())
    request = urllib.request.Request(base_url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, got = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), dict(exc.headers)
    text = raw.decode("utf-8")
    if got.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(text), got
    return status, text, got
