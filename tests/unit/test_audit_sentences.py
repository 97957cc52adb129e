"""Every action a service writes to the audit log reads as a sentence in English and in German
(services/audit_sentences.py); unknown actions read as a neutral sentence naming their code.

The actions are read from the source with `ast`: the action argument of every `AuditEntry(...)` in
services/, resolved through string literals, conditional expressions, module constants and parameters
passed on by the functions that take them (`billing_changes.attributed(actor, request, action, ...)`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services import audit_sentences
from services.i18n import catalog

SERVICES = Path(__file__).resolve().parents[2] / "services"


@dataclass(frozen=True)
class _Module:
    path: Path
    tree: ast.Module
    parents: dict[ast.AST, ast.AST]
    constants: dict[str, ast.expr]


def _modules() -> list[_Module]:
    found = []
    for path in sorted(SERVICES.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        constants = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                     for target in node.targets if isinstance(target, ast.Name)}
        found.append(_Module(path, tree, parents, constants))
    return found


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _argument(call: ast.Call, position: int, name: str) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return call.args[position] if len(call.args) > position else None


def _taking(name: str, node: ast.AST, module: _Module) -> tuple[str, int] | None:
    """(function, position) of the innermost function around `node` with a parameter `name` (a
    closure's variable comes from the function around it)."""
    while node in module.parents:
        node = module.parents[node]
        if isinstance(node, ast.FunctionDef):
            names = [a.arg for a in node.args.args]
            if name in names:
                return node.name, names.index(name)
    return None


def written_actions() -> tuple[set[str], list[str]]:
    """(every action services/ writes, places whose action cannot be told from the source)."""
    modules = _modules()
    actions: set[str] = set()
    unknown: list[str] = []
    # (function name, position, parameter name): calls of these pass the action on.
    wanted = [("AuditEntry", 1, "action")]
    seen = set()
    while wanted:
        function, position, parameter = wanted.pop()
        if (function, position, parameter) in seen:
            continue
        seen.add((function, position, parameter))
        for module in modules:
            for call in (n for n in ast.walk(module.tree) if isinstance(n, ast.Call) and _callee(n) == function):
                value = _argument(call, position, parameter)
                where = f"{module.path.relative_to(SERVICES.parent)}:{call.lineno}"
                if value is None:
                    unknown.append(where)
                    continue
                for expression in _alternatives(value):
                    if isinstance(expression, ast.Constant) and isinstance(expression.value, str):
                        actions.add(expression.value)
                    elif isinstance(expression, ast.Name) and expression.id in module.constants:
                        constant = module.constants[expression.id]
                        if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                            actions.add(constant.value)
                        else:
                            unknown.append(where)
                    elif isinstance(expression, ast.Name) and (taking := _taking(expression.id, call, module)):
                        wanted.append((*taking, expression.id))
                    else:
                        unknown.append(where)
    return actions, unknown


def _alternatives(expression: ast.expr) -> list[ast.expr]:
    if isinstance(expression, ast.IfExp):
        return _alternatives(expression.body) + _alternatives(expression.orelse)
    return [expression]


def _entry(action: str) -> dict:
    return {"at": datetime(2025, 5, 2, 9, 14, 3, tzinfo=UTC).isoformat(), "actor_email": "admin@contoso.example",
            "actor_name": "Admin", "actor_tid": "tid", "actor_oid": "oid", "action": action,
            "target": "j.gross@contoso.example", "before": None, "after": None}


def test_the_source_reading_finds_the_actions_it_should():
    # Guards the reading against passing on an empty or shrunken set (a renamed class or argument).
    actions, unknown = written_actions()
    assert unknown == [], "write the action as a string literal or a module constant"
    assert {"license.assigned", "licenses.assigned", "license.revoked", "license.reassigned", "license.restored",
            "delegate.invited", "invitation.expired", "ownership.transferred", "quantity.changed",
            "cancellation.scheduled", "cancellation.undone", "subscription.updated", "billing.settings_changed",
            "setup.step_marked", "merge.started", "subscription.purchased"} <= actions


@pytest.mark.parametrize("language", ["en", "de"])
def test_every_action_written_has_a_sentence_in_both_languages(language):
    actions, _ = written_actions()
    missing = sorted(a for a in actions if not audit_sentences.has_sentence(a, language))
    assert missing == [], f"actions without a sentence in {language}: add them to services/audit_sentences.py"
    for action in sorted(actions):
        described = audit_sentences.describe(_entry(action), language)
        assert described.key != audit_sentences.UNKNOWN, action
        assert described.key in catalog(language), f"{action}: {described.key} missing in {language}"
        assert "{" not in described.sentence and action not in described.sentence, described.sentence
        assert described.details[0].value == action  # the code stays one click away


def test_the_german_sentences_are_german():
    actions, _ = written_actions()
    for action in actions:
        english, german = (audit_sentences.describe(_entry(action), language).sentence for language in ("en", "de"))
        assert english != german, action


def test_a_reassignment_reads_as_one_sentence_in_each_language():
    entry = {**_entry("license.reassigned"), "target": "nachfolger@contoso.example",
             "before": {"email": "j.gross@contoso.example"}, "after": {"email": "nachfolger@contoso.example"}}
    assert audit_sentences.describe(entry, "de").sentence == (
        "admin@contoso.example hat die Lizenz von j.gross@contoso.example an nachfolger@contoso.example übertragen.")
    assert audit_sentences.describe(entry, "en").sentence == (
        "admin@contoso.example reassigned the license of j.gross@contoso.example to nachfolger@contoso.example.")


def test_counts_use_real_plurals():
    def bulk(count: int) -> dict:
        emails = [f"p{i}@contoso.example" for i in range(count)]
        return {**_entry("licenses.assigned"), "target": f"{count} addresses",
                "after": {"emails": emails, "request_id": "r1"}}

    def sentence(entry: dict, language: str) -> str:
        return audit_sentences.describe(entry, language).sentence.removeprefix("admin@contoso.example ")

    assert sentence(bulk(8), "de") == "hat 8 Adressen Lizenzen zugewiesen."
    assert sentence(bulk(1), "de") == "hat einer Adresse eine Lizenz zugewiesen."
    assert sentence(bulk(8), "en") == "assigned licenses to 8 addresses."
    assert sentence(bulk(1), "en") == "assigned a license to one address."
    lowered = {**_entry("quantity.changed"), "before": {"quantity": 2}, "after": {"quantity": 1}}
    assert sentence(lowered, "en") == "changed the quantity from 2 to 1 license."
    assert sentence(lowered, "de") == "hat die Anzahl von 2 auf 1 Lizenz geändert."


def test_a_bulk_entry_whose_addresses_were_cut_short_still_counts_them():
    # Entries over 30,000 characters are stored cut short (adapters/subscription_repository.py).
    entry = {**_entry("licenses.assigned"), "target": "900 addresses",
             "after": {"truncated": True, "characters": 40_000, "start": "{\"emails\": [\"a@"}}
    assert audit_sentences.describe(entry, "en").sentence == "admin@contoso.example assigned licenses to 900 addresses."


def test_stripe_changes_name_the_status_in_the_pages_language():
    entry = {**_entry("subscription.updated"), "actor_email": "", "actor_name": "Stripe", "actor_oid": "",
             "actor_tid": "", "target": "customer.subscription.updated",
             "before": {"status": "active", "quantity": 5}, "after": {"status": "past_due", "quantity": 5}}
    assert audit_sentences.describe(entry, "de").sentence == (
        "Stripe hat den Status des Abonnements von „aktiv“ auf „Zahlung überfällig“ geändert.")


def test_an_unknown_action_reads_as_a_neutral_sentence_with_its_code_and_raw_details():
    entry = {**_entry("billing.something_new"), "target": "x", "before": {"a": 1}, "after": {"a": 2}}
    described = audit_sentences.describe(entry, "de")
    assert described.key == audit_sentences.UNKNOWN
    assert described.sentence == "admin@contoso.example hat eine Änderung vorgenommen (billing.something_new)."
    assert [(d.label, d.value) for d in described.details] == [
        ("Aktionscode", "billing.something_new"), ("Ziel", "x"), ("Vorher", '{"a": 1}'), ("Nachher", '{"a": 2}')]
