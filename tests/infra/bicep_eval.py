"""Evaluates the parsed Bicep templates (tests/infra/templates.py) with sample values, as ARM would.

Enough of Bicep for what the infra tests need to see by value (the Function App's app settings): parameters
with defaults, variables, string interpolation, `?:`, `!`, `&&`, `||`, `==`, property access, `for`
loops, modules and their outputs, and the functions the templates use on that path. Values Azure assigns
when it creates a resource (endpoints, client ids, connection strings) come from `RUNTIME`, shaped like the
real ones. Anything else raises `Unsupported`: extend this file rather than guess.

pycep gives an identifier and a string literal the same shape (`'production'` and `production` are both the
Python string "production"); a string is read as a name when that name is declared in the template.
"""

from __future__ import annotations

import hashlib
import re
import string
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from tests.infra.templates import body, key, template


class Unsupported(Exception):
    """An expression this evaluator does not know; extend it."""


@dataclass(frozen=True)
class Deployment:
    """Where the deployment runs: what subscription(), tenant() and resourceGroup() return."""

    subscription_id: str = "00000000-0000-4000-8000-000000000001"
    tenant_id: str = "00000000-0000-4000-8000-000000000002"
    resource_group: str = ""
    location: str = "westeurope"


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def unique_string(*parts: str) -> str:
    """Deterministic 13-character [a-z0-9] string, the shape of ARM's uniqueString()."""
    digest = int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest(), "big")
    alphabet = string.ascii_lowercase + string.digits
    out = ""
    for _ in range(13):
        digest, index = divmod(digest, len(alphabet))
        out += alphabet[index]
    return out


# Resource type -> runtime properties Azure returns, from the resource's name and the deployment.
RUNTIME: dict[str, Callable[[str, Deployment], dict[str, Any]]] = {
    "microsoft.managedidentity/userassignedidentities": lambda name, d: {
        "clientId": _uuid("client", name),
        "principalId": _uuid("principal", name),
        "tenantId": d.tenant_id,
    },
    "microsoft.storage/storageaccounts": lambda name, d: {
        "primaryEndpoints": {svc: f"https://{name}.{svc}.core.windows.net/" for svc in ("blob", "queue", "table")}
    },
    "microsoft.insights/components": lambda name, d: {
        "ConnectionString": (
            f"InstrumentationKey={_uuid('ikey', name)};IngestionEndpoint=https://{d.location}-0.in.applicationinsights"
            f".azure.com/;LiveEndpoint=https://{d.location}.livediagnostics.monitor.azure.com/;"
            f"ApplicationId={_uuid('appid', name)}"
        ),
    },
    "microsoft.keyvault/vaults": lambda name, d: {"vaultUri": f"https://{name}.vault.azure.net/"},
    "microsoft.communication/communicationservices": lambda name, d: {
        "hostName": f"{name}.europe.communication.azure.com"
    },
    "microsoft.communication/emailservices/domains": lambda name, d: {
        "mailFromSenderDomain": f"{_uuid('domain', name)}.azurecomm.net"
    },
    "microsoft.web/sites": lambda name, d: {"defaultHostName": f"{name}.azurewebsites.net"},
}


class LazyMapping(Mapping[str, Any]):
    """A mapping whose values are computed on first access (module outputs, resource objects)."""

    def __init__(self, compute: Mapping[str, Callable[[], Any]]) -> None:
        self._compute = compute
        self._values: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            self._values[name] = self._compute[name]()
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._compute)

    def __len__(self) -> int:
        return len(self._compute)

    def __contains__(self, name: object) -> bool:
        return name in self._compute


@dataclass
class Scope:
    """One template evaluated with given parameter values."""

    name: str
    given: Mapping[str, Any]
    deployment: Deployment
    locals: dict[str, Any] = field(default_factory=dict)
    _variables: dict[str, Any] = field(default_factory=dict)

    @property
    def parsed(self) -> dict[str, Any]:
        return template(self.name)

    # --- names ---------------------------------------------------------------------------------

    def names(self) -> set[str]:
        parsed = self.parsed
        return (
            set(self.locals)
            | set(parsed.get("parameters", {}))
            | set(parsed.get("variables", {}))
            | set(parsed.get("resources", {}))
            | set(parsed.get("modules", {}))
        )

    def lookup(self, name: str) -> Any:
        parsed = self.parsed
        if name in self.locals:
            return self.locals[name]
        if name in parsed.get("parameters", {}):
            return self.parameter(name)
        if name in parsed.get("variables", {}):
            if name not in self._variables:
                self._variables[name] = self.eval(parsed["variables"][name]["value"])
            return self._variables[name]
        if name in parsed.get("resources", {}):
            return self.resource(name)
        if name in parsed.get("modules", {}):
            return self.module(name)
        raise Unsupported(f"{self.name}.bicep: unknown name {name!r}")

    def parameter(self, name: str) -> Any:
        spec = self.parsed["parameters"][name]
        if name in self.given:
            return self.given[name]
        if spec["default"] is None:
            raise KeyError(f"{self.name}.bicep: parameter {name} has no value and no default")
        return self.eval(spec["default"])

    def resource(self, symbol: str) -> Mapping[str, Any]:
        resource = self.parsed["resources"][symbol]
        config = body(resource)
        type_ = resource["type"]
        if resource.get("existing"):
            raise Unsupported(f"{self.name}.bicep: existing resource {symbol}")

        def name() -> str:
            own = str(self.eval(config["name"]))
            parent = config.get("parent")
            return f"{self.resource(parent)['name']}/{own}" if parent else own

        def resource_id() -> str:
            d = self.deployment
            prefix = f"/subscriptions/{d.subscription_id}"
            if type_.lower() != "microsoft.resources/resourcegroups":
                prefix += f"/resourceGroups/{d.resource_group}"
            return f"{prefix}/providers/{type_}/{name()}"

        def properties() -> dict[str, Any]:
            runtime = RUNTIME.get(type_.lower())
            return runtime(name().rsplit("/", 1)[-1], self.deployment) if runtime else {}

        return LazyMapping({"name": name, "id": resource_id, "properties": properties})

    def module(self, symbol: str) -> Mapping[str, Any]:
        child = module_scope(self, symbol)
        outputs = child.parsed.get("outputs", {})
        return {"outputs": LazyMapping({o: partial(child.eval, outputs[o]["value"]) for o in outputs})}

    # --- expressions ---------------------------------------------------------------------------

    def eval(self, node: Any) -> Any:
        if isinstance(node, str):
            return self._string(node)
        if node is None or isinstance(node, bool | int | float):
            return node
        if isinstance(node, list):
            return [self.eval(item) for item in node]
        if isinstance(node, dict):
            if "operator" in node:
                return self._operator(node["operator"])
            if "function" in node:
                return self._function(node["function"])
            if "loop_type" in node:
                return self._loop(node)
            return {key(k): self.eval(v) for k, v in node.items()}
        raise Unsupported(f"{self.name}.bicep: {node!r}")

    def _string(self, text: str) -> Any:
        if "${" in text:
            return re.sub(r"\$\{([^}]*)\}", lambda m: str(self._path(m.group(1).strip())), text)
        if text in self.names():
            return self.lookup(text)
        return text  # a string literal

    def _path(self, expression: str) -> Any:
        if not re.fullmatch(r"[A-Za-z_]\w*(\.\w+)*", expression):
            raise Unsupported(f"{self.name}.bicep: interpolation ${{{expression}}}")
        first, *rest = expression.split(".")
        value = self.lookup(first)
        for part in rest:
            value = value[part]
        return value

    def _accessor_names(self, node: Any) -> list[str]:
        if isinstance(node, str):
            return [node]
        operands = node["operator"]["operands"]
        return [*self._accessor_names(operands["operand_1"]), *self._accessor_names(operands["operand_2"])]

    def _operator(self, operator: dict[str, Any]) -> Any:
        kind, operands = operator["type"], operator["operands"]
        if kind == "property_accessor":
            value = self.eval(operands["operand_1"])
            for part in self._accessor_names(operands["operand_2"]):
                value = value[part]
            return value
        if kind == "conditional":
            branch = "true_value" if self.eval(operands["condition"]) else "false_value"
            return self.eval(operands[branch])
        if kind == "not":
            return not self.eval(operands["bool_value"])
        values = [self.eval(v) for v in operands.values()]
        if kind == "and":
            return all(values)
        if kind == "or":
            return any(values)
        if kind == "equals":
            return values[0] == values[1]
        if kind == "not_equals":
            return values[0] != values[1]
        raise Unsupported(f"{self.name}.bicep: operator {kind}")

    def _function(self, function: dict[str, Any]) -> Any:
        kind = function["type"]
        args = [self.eval(v) for v in function["parameters"].values() if v is not None]
        d = self.deployment
        if kind == "empty":
            return args[0] in ("", None, [], {})
        if kind == "to_lower":
            return str(args[0]).lower()
        if kind == "unique_string":
            return unique_string(*map(str, args))
        if kind == "guid":
            return _uuid(*map(str, args))
        if kind == "union":
            merged: dict[str, Any] = {}
            for arg in args:
                merged.update(arg)
            return merged
        if kind == "items":
            return [{"key": k, "value": v} for k, v in sorted(args[0].items(), key=lambda kv: kv[0].lower())]
        if kind == "subscription":
            return {"id": f"/subscriptions/{d.subscription_id}", "subscriptionId": d.subscription_id,
                    "tenantId": d.tenant_id}
        if kind == "tenant":
            return {"tenantId": d.tenant_id}
        if kind == "resource_group":
            return {"id": f"/subscriptions/{d.subscription_id}/resourceGroups/{d.resource_group}",
                    "name": d.resource_group, "location": d.location}
        raise Unsupported(f"{self.name}.bicep: function {kind}")

    def _loop(self, node: dict[str, Any]) -> list[Any]:
        detail = node["loop_type"]["detail"]
        if node["loop_type"]["type"] != "array" or node.get("condition"):
            raise Unsupported(f"{self.name}.bicep: loop {node['loop_type']}")
        out = []
        for item in self.eval(detail["array_name"]):
            child = Scope(self.name, self.given, self.deployment, {**self.locals, detail["item_name"]: item},
                          self._variables)
            out.append(child.eval(node["config"]))
        return out


def resource_property(scope: Scope, symbol: str, *path: str) -> Any:
    """A declared property of a resource in `scope`, evaluated (e.g. the site's siteConfig.appSettings)."""
    node: Any = body(scope.parsed["resources"][symbol])
    for part in path:
        node = node[part]
    return scope.eval(node)


def module_scope(parent: Scope, symbol: str) -> Scope:
    """The scope a module of `parent` is evaluated in, with its parameters as `parent` passes them (lazily)."""
    module = parent.parsed["modules"][symbol]
    config = module["config"]
    d = parent.deployment
    group = parent.eval(config["scope"])["name"] if config.get("scope") else d.resource_group
    params = LazyMapping({p: partial(parent.eval, v) for p, v in config["params"].items()})
    return Scope(module["detail"]["path"].removesuffix(".bicep"), params,
                 Deployment(d.subscription_id, d.tenant_id, group, d.location))
