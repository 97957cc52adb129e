"""Route templates with the Functions host's (ASP.NET Core) semantics.

Supported: literal segments (matched case-insensitively), `{name}`, `{name?}` optional,
`{name=default}`, `{*rest}` / `{**rest}` catch-all, several parameters in one segment
(`{file}.{ext}`), and the inline constraints int, long, bool, guid, alpha, datetime, decimal,
double, float, minlength(n), maxlength(n), length(n[,m]), min(n), max(n), range(a,b), regex(...),
required. `{{` and `}}` are literal braces.

When several routes match, the route of the function whose name sorts first wins, as on Azure: the
Functions host sorts the functions by name (FunctionMetadataManager: `OrderBy(f => f.Name,
StringComparer.OrdinalIgnoreCase)`), adds their routes in that order (WebJobsRouteBuilder) and takes
the first route whose template and methods match (ASP.NET's RouteCollection). There is no route
precedence by specificity (azure-functions-host issues 3153 and 9876): `items/latest` loses to
`items/{name}` when the latter's function is named first. A method is a constraint of its route, so a
request with another method goes on to the next route.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote


class RouteTemplateError(ValueError):
    pass


def decode_path(raw: str) -> str:
    """Percent-decode a path like ASP.NET Core's Request.Path: everything except %2F, so an
    encoded slash inside a value never looks like a segment separator."""
    return "%2F".join(unquote(part) for part in re.split("%2[fF]", raw))


def _is_int(value: str, bits: int) -> bool:
    if not re.fullmatch(r"[+-]?\d+", value.strip()):
        return False
    return -(2 ** (bits - 1)) <= int(value) < 2 ** (bits - 1)


def _is_number(value: str) -> bool:
    try:
        Decimal(value)
        return re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", value) is not None
    except InvalidOperation:
        return False


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value.strip("{}()"))
        return True
    except ValueError:
        return False


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
        return True
    except ValueError:
        return False


def _constraint(name: str, argument: str | None) -> Callable[[str], bool]:
    """Build the check for one inline constraint such as `int` or `range(1,10)`."""
    args = [a.strip() for a in argument.split(",")] if argument is not None and name != "regex" else []
    simple = {
        "int": lambda v: _is_int(v, 32),
        "long": lambda v: _is_int(v, 64),
        "bool": lambda v: v.lower() in ("true", "false"),
        "guid": _is_guid,
        "alpha": lambda v: re.fullmatch(r"[a-zA-Z]+", v) is not None,
        "datetime": _is_datetime,
        "decimal": _is_number,
        "double": _is_number,
        "float": _is_number,
        "required": lambda v: v != "",
    }
    if name in simple:
        return simple[name]
    if name == "minlength":
        return lambda v: len(v) >= int(args[0])
    if name == "maxlength":
        return lambda v: len(v) <= int(args[0])
    if name == "length":
        low, high = (int(args[0]), int(args[0])) if len(args) == 1 else (int(args[0]), int(args[1]))
        return lambda v: low <= len(v) <= high
    if name in ("min", "max", "range"):
        least = int(args[0]) if name in ("min", "range") else None
        most = int(args[-1]) if name in ("max", "range") else None
        return lambda v: _is_int(v, 64) and (least is None or int(v) >= least) and (most is None or int(v) <= most)
    if name == "regex":
        # ASP.NET's regex constraint is case-insensitive and not implicitly anchored.
        pattern = re.compile(argument or "", re.IGNORECASE)
        return lambda v: pattern.search(v) is not None
    raise RouteTemplateError(f"unsupported route constraint {name!r}")


@dataclass
class _Parameter:
    name: str
    constraints: list[Callable[[str], bool]] = field(default_factory=list)
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.constraints)


@dataclass
class _Segment:
    parts: list[str | _Parameter]  # literal text and parameters in order
    pattern: re.Pattern | None = None

    @property
    def only_parameter(self) -> _Parameter | None:
        return self.parts[0] if len(self.parts) == 1 and isinstance(self.parts[0], _Parameter) else None

    @property
    def literal(self) -> str:
        """The text of a segment that has no parameters."""
        return "".join(p for p in self.parts if isinstance(p, str))


def _split_outside_parentheses(text: str, separator: str) -> list[str]:
    pieces, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == separator and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += char
    pieces.append(current)
    return pieces


def _parse_parameter(body: str, template: str) -> _Parameter:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    default = None
    pieces = _split_outside_parentheses(body, ":")
    name, constraint_texts = pieces[0], pieces[1:]
    # `=default` and `?` close the parameter; they follow the last constraint.
    last = constraint_texts[-1] if constraint_texts else name
    optional = last.endswith("?")
    if optional:
        last = last[:-1]
    if "=" in last and not last.startswith("regex("):
        last, default = last.split("=", 1)
    if constraint_texts:
        constraint_texts[-1] = last
    else:
        name = last
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RouteTemplateError(f"route {template!r}: invalid parameter name {name!r}")
    constraints = []
    for text in constraint_texts:
        match = re.fullmatch(r"(\w+)(?:\((.*)\))?", text, re.DOTALL)
        if not match:
            raise RouteTemplateError(f"route {template!r}: invalid constraint {text!r}")
        constraints.append(_constraint(match.group(1).lower(), match.group(2)))
    return _Parameter(name, constraints, optional, default, catch_all)


def _parse_segment(text: str, template: str) -> _Segment:
    parts: list[str | _Parameter] = []
    literal, i = "", 0
    while i < len(text):
        char = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i):
            literal += char
            i += 2
        elif char == "{":
            body, i = "", i + 1
            while i < len(text):
                if text.startswith("}}", i) or text.startswith("{{", i):
                    body += text[i]
                    i += 2
                elif text[i] == "}":
                    break
                else:
                    body += text[i]
                    i += 1
            else:
                raise RouteTemplateError(f"route {template!r}: unclosed '{{'")
            i += 1
            if literal:
                parts.append(literal)
                literal = ""
            parts.append(_parse_parameter(body, template))
        elif char == "}":
            raise RouteTemplateError(f"route {template!r}: unmatched '}}'")
        else:
            literal += char
            i += 1
    if literal:
        parts.append(literal)
    segment = _Segment(parts)
    if segment.only_parameter is None and any(isinstance(p, _Parameter) for p in parts):
        regex = "".join(
            f"(?P<{p.name}>.+?)" if isinstance(p, _Parameter) else re.escape(p) for p in parts
        )
        segment.pattern = re.compile(regex, re.IGNORECASE)
    return segment


@dataclass
class RouteTemplate:
    text: str
    segments: list[_Segment]

    @classmethod
    def parse(cls, text: str) -> RouteTemplate:
        stripped = text.strip().strip("/")
        segments = [_parse_segment(s, text) for s in stripped.split("/")] if stripped else []
        for segment in segments[:-1]:
            parameter = segment.only_parameter
            if parameter is not None and parameter.catch_all:
                raise RouteTemplateError(f"route {text!r}: a catch-all parameter must be the last segment")
        return cls(text, segments)

    @property
    def first_literal(self) -> str | None:
        """The first segment in lower case when it is plain text (a path must start with it), else None."""
        if not self.segments or any(isinstance(p, _Parameter) for p in self.segments[0].parts):
            return None
        return self.segments[0].literal.lower()

    def match(self, raw_segments: list[str], decoded: list[str] | None = None) -> dict[str, str] | None:
        """Match percent-encoded path segments (`decoded`: the same, decoded, if the caller has them);
        returns the decoded route values or None."""
        if decoded is None:
            decoded = [decode_path(s) for s in raw_segments]
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            parameter = segment.only_parameter
            if parameter is not None and parameter.catch_all:
                rest = "/".join(decoded[index:])
                if rest:
                    if not parameter.accepts(rest):
                        return None
                    values[parameter.name] = rest
                elif parameter.default is not None:
                    values[parameter.name] = parameter.default
                return values
            if index >= len(raw_segments):
                # Missing trailing segments are fine only for optional or defaulted parameters.
                if parameter is None or not (parameter.optional or parameter.default is not None):
                    return None
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            value = decoded[index]
            if parameter is not None:
                if value == "" or not parameter.accepts(value):
                    return None
                values[parameter.name] = value
            elif segment.pattern is not None:
                match = segment.pattern.fullmatch(value)
                if match is None:
                    return None
                for part in segment.parts:
                    if isinstance(part, _Parameter):
                        if not part.accepts(match.group(part.name)):
                            return None
                        values[part.name] = match.group(part.name)
            elif value.lower() != segment.literal.lower():
                return None
        if len(raw_segments) > len(self.segments):
            return None
        return values


@dataclass
class Route:
    template: RouteTemplate
    methods: frozenset[str] | None  # None: every method
    target: Any
    name: str  # the function's: routes are tried in the order of their names
    first_literal: str | None = None

    def __post_init__(self) -> None:
        self.first_literal = self.template.first_literal


@dataclass
class RouteMatch:
    target: Any
    route_params: dict[str, str]


@dataclass
class MethodNotAllowed:
    allowed: list[str]


class RouteTable:
    def __init__(self, route_prefix: str) -> None:
        self.prefix_segments = [s for s in route_prefix.strip("/").split("/") if s]
        self.routes: list[Route] = []

    def add(self, template: str, methods: list[str] | None, target: Any, name: str | None = None) -> None:
        """Add the route of the function `name` (default: the template)."""
        self.routes.append(Route(RouteTemplate.parse(template),
                                 frozenset(m.upper() for m in methods) if methods else None, target,
                                 name or template))
        # Azure's order: by function name, case-insensitive and ordinal (for the ASCII names functions
        # have, upper-casing gives .NET's OrdinalIgnoreCase).
        self.routes.sort(key=lambda r: r.name.upper())

    def match(self, method: str, raw_path: str) -> RouteMatch | MethodNotAllowed | None:
        """`raw_path` is the percent-encoded path without the query string."""
        segments = raw_path.split("/")[1:] if raw_path.startswith("/") else raw_path.split("/")
        if segments and segments[-1] == "":
            segments = segments[:-1]  # a trailing slash does not change the match
        prefix = self.prefix_segments
        if [decode_path(s).lower() for s in segments[: len(prefix)]] != [p.lower() for p in prefix]:
            return None
        segments = segments[len(prefix):]
        # Decoded once per request, not once per route tried (the host tries them in name order).
        decoded = [decode_path(s) for s in segments]
        first = decoded[0].lower() if decoded else ""
        allowed: set[str] = set()
        for route in self.routes:
            literal = route.first_literal
            if literal is not None and literal != first:
                continue  # cannot match: its first segment is fixed text
            values = route.template.match(segments, decoded)
            if values is None:
                continue
            if route.methods is None or method.upper() in route.methods:
                return RouteMatch(route.target, values)
            allowed |= route.methods
        return MethodNotAllowed(sorted(allowed)) if allowed else None
