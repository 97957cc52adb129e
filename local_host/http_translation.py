"""HTTP request parts → `func.HttpRequest`, and function result → status, header lines, body.

This is the whole contract between the local host and an HTTP function, kept free of sockets so a
test can build the very request the host would build, call the function directly, and compare.

Host behaviours reproduced here:
- Repeated query parameters and repeated request headers reach the function as one value, joined
  with "," (ASP.NET's StringValues.ToString(), which is what the host puts into the RPC message).
- Request header names are lower-case in `req.headers` (azure.functions does that).
- A response without a Content-Type header gets `mimetype` (+ `; charset=...` for text/*), as the
  Python worker's HttpResponseConverter does.
- `func.HttpResponse.headers` is a werkzeug `Headers` multi-dict: `headers.add("Set-Cookie", ...)`
  twice gives two Set-Cookie lines. (Passing `headers={...}` to the constructor can only hold one.)
  Each is emitted as its own header line, as the host does with the worker's cookie list.
- Content-Length and Transfer-Encoding from the function are dropped: the server frames the body.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

_FRAMING_HEADERS = {"content-length", "transfer-encoding", "connection"}


def _join_repeated(pairs: Iterable[tuple[str, str]], *, case_insensitive: bool) -> dict[str, str]:
    joined: dict[str, str] = {}
    original_names: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if case_insensitive else name
        if key in joined:
            joined[key] = f"{joined[key]},{value}"
        else:
            joined[key] = value
            original_names[key] = name
    return {original_names[k]: v for k, v in joined.items()}


def query_params(url: str) -> dict[str, str]:
    return _join_repeated(parse_qsl(urlsplit(url).query, keep_blank_values=True), case_insensitive=False)


def build_http_request(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]] | dict[str, str] = (),
    body: bytes = b"",
    route_params: dict[str, str] | None = None,
) -> func.HttpRequest:
    """The `func.HttpRequest` the host hands to a function for this request.

    `url` is the absolute URL as the client addressed it (scheme, Host header, path, query).
    """
    header_pairs = headers.items() if isinstance(headers, dict) else headers
    return func.HttpRequest(
        method=method.upper(),
        url=url,
        headers=_join_repeated(header_pairs, case_insensitive=True),
        params=query_params(url),
        route_params=dict(route_params or {}),
        body=body,
    )


def response_parts(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, header lines in order, body) for what an HTTP function returned.

    Raises TypeError for results the worker could not send either (the host answers 500).
    """
    if isinstance(result, str):
        # A `-> str` function: the worker sends a string datum; the host answers 200 text/plain.
        return 200, [("Content-Type", "text/plain; charset=utf-8")], result.encode("utf-8")
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function must return func.HttpResponse or str, got {type(result).__name__}")
    lines = [(name, value) for name, value in result.headers.items() if name.lower() not in _FRAMING_HEADERS]
    if not any(name.lower() == "content-type" for name, _ in lines):
        mimetype = result.mimetype
        content_type = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
        lines.append(("Content-Type", content_type))
    return result.status_code, lines, result.get_body() or b""
