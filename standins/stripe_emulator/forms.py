"""Decoding of Stripe's form encoding: ``line_items[0][price]=x&metadata[k]=v&expand[]=y``.

The SDK sends arrays with explicit indices (``expand[0]=...``) while curl users and Stripe's
docs use ``expand[]=...``; both decode to the same Python list. Values stay strings, as on
the wire; resources coerce what they need with the helpers below.
"""

import re
from typing import Any
from urllib.parse import parse_qsl

from .errors import StripeError

_SEGMENT = re.compile(r"\[([^\]]*)\]")


def decode(query):
    """Turn a form-encoded string into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(query or "", keep_blank_values=True):
        head, _, rest = key.partition("[")
        segments = [head] + (_SEGMENT.findall("[" + rest) if rest else [])
        node = root
        for i, segment in enumerate(segments):
            last = i == len(segments) - 1
            if segment == "":
                # "[]" means "append": give the element the next free index.
                segment = str(len(node))
            if last:
                node[segment] = value
            else:
                node = node.setdefault(segment, {})
                if not isinstance(node, dict):
                    raise StripeError(400, f"Invalid array or hash for parameter {key}",
                                      code="parameter_invalid", param=key)
    return _listify(root)


def _listify(node):
    """Dicts whose keys are all indices become lists, ordered by index."""
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def as_list(value):
    """A parameter that should be an array; tolerate a single value or an index dict."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]


def as_int(params, name, default=None, *, minimum=None):
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {value}", code="parameter_invalid_integer",
                          param=name) from None
    if minimum is not None and number < minimum:
        raise StripeError(400, f"This value must be greater than or equal to {minimum}.",
                          code="parameter_invalid_integer", param=name)
    return number


def as_bool(params, name, default=None):
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise StripeError(400, f"Invalid boolean: {value}", code="parameter_invalid_boolean",
                      param=name)


def as_metadata(params, name="metadata", current=None):
    """Stripe merges metadata on update; an empty value deletes the key."""
    given = params.get(name)
    merged = dict(current or {})
    if given is None:
        return merged
    if given == "":
        return {}
    if not isinstance(given, dict):
        raise StripeError(400, "Invalid hash", code="parameter_invalid", param=name)
    for key, value in given.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged
