"""What a request must be before any view sees it, so that odd input is a 4xx, never a 500: no URL segment,
query parameter, form field or JSON string (key or value) carries a control character (PostgreSQL refuses a
NUL in text and in JSON; nothing a person types has the others) — 400 naming the field; and no id in a URL is larger than the database's
integer (``<int:…>`` above 2^31 − 1 is a 404, as any id no table holds).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flask import Flask, abort, request
from werkzeug.routing import IntegerConverter, UnicodeConverter

from cloud.i18n import translate

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
# Tabs and line breaks are text (a correction's reason may have them); the other C0 controls and DEL are not.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class PrintableSegment(UnicodeConverter):
    """The default ``<name>`` converter without control characters (and at most 200 characters: no code,
    period or kind is longer)."""

    def __init__(self, map, minlength: int = 1, maxlength: int | None = None, length: int | None = None) -> None:
        super().__init__(map, minlength, 200 if maxlength is None and length is None else maxlength, length)
        self.regex = self.regex.replace("[^/]", r"[^/\x00-\x1f\x7f]", 1)


class DatabaseId(IntegerConverter):
    """``<int:…>`` within PostgreSQL's integer: 10^20 would otherwise reach the query and fail there (500)."""

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None, max: int | None = None,
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, 2**31 - 1 if max is None else max, signed)


def install_converters(app: Flask) -> None:
    """Before any blueprint is registered: rules take their converters when they are added."""
    app.url_map.converters["int"] = DatabaseId
    app.url_map.converters["default"] = PrintableSegment
    app.url_map.converters["string"] = PrintableSegment


# A batch is checked field by field where it is parsed (cloud/ingest/rows.py), from its raw (maybe gzipped) body.
OWN_CHECKS = ("/api/v1/batches",)


DEEPEST = 32  # no document of ours nests deeper; Python's parser gives up near 1 000 (a RecursionError: a 500)


def json_strings(value: Any, where: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """(field, text) for every key and string in a JSON document, the field named as ``meters[0].code``."""
    if depth > DEEPEST:
        abort(400, description=translate("err_json_too_deep", field=where[:40], depth=DEEPEST))
    if isinstance(value, str):
        yield where or "body", value
    elif isinstance(value, dict):
        for key, item in value.items():
            field = f"{where}.{key}" if where else str(key)
            yield field, str(key)
            yield from json_strings(item, field, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from json_strings(item, f"{where}[{index}]", depth + 1)


def refuse_control_characters() -> None:
    fields = list(request.args.items(multi=True))
    if request.mimetype in FORM_TYPES:
        fields += list(request.form.items(multi=True))
    elif request.is_json and request.path not in OWN_CHECKS:
        try:
            document = request.get_json(silent=True)
        except RecursionError:
            abort(400, description=translate("err_json_too_deep", field="body", depth=DEEPEST))
        fields += list(json_strings(document))
    for name, value in fields:
        name, value = name or "", value or ""  # a multipart part may come without a name or a value
        if CONTROL.search(name) or CONTROL.search(value):
            abort(400, description=translate("err_control_character", field=CONTROL.sub("?", name)[:40]))


def init_app(app: Flask) -> None:
    app.before_request(refuse_control_characters)
