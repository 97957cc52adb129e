"""No open redirects: a `next` target is accepted only as a same-origin relative path."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_NEXT = "/api/dashboard"


def safe_next(target: str | None, default: str = DEFAULT_NEXT) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    # "/\t/evil.example" and similar: anything that parses with a scheme or host is refused.
    if parts.scheme or parts.netloc or any(ord(c) < 0x20 for c in target):
        return default
    return target
