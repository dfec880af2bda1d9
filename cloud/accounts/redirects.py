"""Where a sign-in may send the browser next: a path of this site only, judged as the browser will read it.

Browsers drop tabs and newlines from a URL and read a backslash as a slash, so ``/\\t/evil.example`` and
``/\\evil.example`` both become ``//evil.example`` — another site. A target is accepted only if it has none
of those, starts with one slash, and parses with no scheme and no host.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_LENGTH = 2000


def same_site_path(target: str | None) -> str | None:
    """``target`` when it is a path on this site; otherwise None (the caller goes home)."""
    if not target or len(target) > MAX_LENGTH or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return None
    if any(ord(c) < 0x21 or ord(c) == 0x7F or c == "\\" for c in target):
        return None
    try:
        parts = urlsplit(target)
    except ValueError:
        return None
    if parts.scheme or parts.netloc:
        return None
    return target
