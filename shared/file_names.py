"""File names for what a person downloads, made from the server's own values (a site's code, a period, an
invoice number): one word of letters, digits, «-», «_» and «.», whatever the values hold. Values in, values out.

A name reaches an HTTP header (``Content-Disposition``) and then somebody's disk: a CR/LF there would add a
header, a quote would end the name early, a slash or «..» would climb folders, a right-to-left override would
show «…exe.pdf» as «…fdp.exe», and a thousand letters would not fit a file system.
"""

from __future__ import annotations

import re
import unicodedata

LONGEST_STEM = 100  # characters; ×2 bytes for Cyrillic in UTF-8, far below any file system's 255
_NOT_A_NAME = re.compile(r"[^\w.-]+")  # \w is Unicode: Cyrillic letters stay, controls and marks go
_RUNS = re.compile(r"-{2,}")


def download_name(*parts: object, extension: str) -> str:
    """``parts`` joined by «-» as one safe file name with ``extension`` («rakhunky-ТП-118-2026-10.pdf»)."""
    text = unicodedata.normalize("NFC", "-".join(str(part) for part in parts))
    stem = _RUNS.sub("-", _NOT_A_NAME.sub("-", text).replace("..", "-"))
    stem = stem.strip("-._")[:LONGEST_STEM].rstrip("-._") or "download"
    return f"{stem}.{extension.strip('.')}"
