"""A register file read as a table of text: CSV (UTF-8 with or without BOM, or Windows-1251 as Excel saves it in
Ukraine; «;», «,» or tab between cells) or XLSX (the first sheet). Each row keeps its line in the file, so an
error can say «line 17, column Телефон».

The header is the first row that names the account-number column; rows above it (a title an office put on the
sheet) are skipped, and so are empty rows.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from python_calamine import CalamineError, CalamineWorkbook

from cloud.errors import ExplainedError
from cloud.register.fields import header_key

MAX_ROWS = 100_000
HEADER_SEARCH = 10  # rows looked at for the header


class TableError(ExplainedError):
    """The file as a whole cannot be read (not CSV/XLSX, no account-number column, too big)."""


@dataclass(frozen=True)
class Table:
    headers: list[str]  # as written in the file
    keys: list[str | None]  # the field each header names (None: a column the register does not know)
    rows: list[tuple[int, list[str]]]  # (line in the file, cells as text)

    def unknown_headers(self) -> list[str]:
        return [h for h, k in zip(self.headers, self.keys, strict=True) if k is None and h]


def read_table(filename: str, body: bytes) -> Table:
    xlsx = body[:2] == b"PK" or filename.lower().endswith(".xlsx")
    return _with_header(_xlsx_rows(body) if xlsx else _csv_rows(body))


def csv_text(body: bytes) -> str:
    """A CSV file's text: UTF-8 (with or without Excel's BOM), else cp1251 — Excel's «CSV» on a Ukrainian Windows."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return body.decode("cp1251", errors="replace")


def _csv_rows(body: bytes) -> list[list[str]]:
    text = csv_text(body)
    if "\x00" in text:
        raise TableError("the file is neither CSV nor XLSX", "err_table_format")
    first = text.split("\n", 1)[0]
    delimiter = max((";", ",", "\t"), key=first.count)
    return [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]


def _xlsx_rows(body: bytes) -> list[list[str]]:
    """The first sheet's cells (calamine reads 20 000 rows in a quarter of a second; openpyxl took eight)."""
    try:
        sheet = CalamineWorkbook.from_filelike(io.BytesIO(body)).get_sheet_by_index(0)
        rows = sheet.to_python(skip_empty_area=False)
    except (CalamineError, ValueError, OSError, IndexError) as exc:
        raise TableError(f"the file is not a readable XLSX workbook: {exc}", "err_table_xlsx") from None
    return [[_cell_text(v) for v in row] for row in rows]


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "так" if value else "ні"
    if isinstance(value, float):
        return repr(value).removesuffix(".0") if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(" ")
    return str(value)  # text, int, a date


def _with_header(rows: list[list[str]]) -> Table:
    index = next((i for i, row in enumerate(rows[:HEADER_SEARCH])
                  if "number" in (header_key(str(cell)) for cell in row if cell)), None)
    if index is None:
        raise TableError("no column names the account number (Особовий рахунок)", "err_table_header")
    keys = [header_key(str(cell)) if cell else None for cell in rows[index]]
    headers = [str(cell).strip() for cell in rows[index]]
    seen: dict[str, str] = {}
    for header, key in zip(headers, keys, strict=True):
        if key is not None and key in seen:
            raise TableError(f"columns {seen[key]!r} and {header!r} both hold {key}", "err_table_twice",
                             first=seen[key], second=header)
        if key is not None:
            seen[key] = header
    body = [(line, [c if isinstance(c, str) else str(c) for c in row])
            for line, row in enumerate(rows[index + 1:], start=index + 2) if any(str(c).strip() for c in row)]
    if len(body) > MAX_ROWS:
        raise TableError(f"{len(body)} rows: at most {MAX_ROWS} in one file", "err_table_rows", rows=len(body),
                         limit=MAX_ROWS)
    return Table(headers, keys, body)
