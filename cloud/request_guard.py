"""What a request must be before any view sees it, so that odd input is a 4xx, never a 500: no URL segment,
query parameter or form field carries a control character (PostgreSQL refuses a NUL in text; nothing a
person types has the others) — 400 naming the field; and no id in a URL is larger than the database's
integer (``<int:…>`` above 2^31 − 1 is a 404, as any id no table holds).
"""

from __future__ import annotations

import re

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


def refuse_control_characters() -> None:
    fields = list(request.args.items(multi=True))
    if request.mimetype in FORM_TYPES:
        fields += list(request.form.items(multi=True))
    for name, value in fields:
        name, value = name or "", value or ""  # a multipart part may come without a name or a value
        if CONTROL.search(name) or CONTROL.search(value):
            abort(400, description=translate("err_control_character", field=CONTROL.sub("?", name)[:40]))


def init_app(app: Flask) -> None:
    app.before_request(refuse_control_characters)
