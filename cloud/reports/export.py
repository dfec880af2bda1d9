"""One small export layer for every report: a report is a title, columns (each header a key of the word
catalogue, read in the report's language), rows and a totals row; it is written to CSV, XLSX or JSON the same way
whatever it reports. No database here.

CSV is for Ukrainian Excel: UTF-8 with a BOM (so Cyrillic is read as UTF-8), ``;`` between fields and a
decimal comma — the list separator and decimal symbol of the uk-UA regional settings, so a double click
opens it in columns with numbers that add up. Money is a Decimal and is written exactly, never via float.

A spreadsheet runs a text cell that starts with = + - @ (an account number «=HYPERLINK(…)»): every text cell
of a CSV or an XLSX — title, headers, values, notes — goes through ``shared.spreadsheet_cells`` and gets a
leading apostrophe; numbers stay numbers. JSON is for scripts and keeps the text exactly.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from cloud.i18n import in_language
from shared.spreadsheet_cells import neutralise, workbook_text

CSV_DELIMITER = ";"
CSV_DECIMAL = ","
MONEY_FORMAT = "#,##0.00"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = ("csv", "xlsx", "json")


def word(key: str, lang: str, **params) -> str:
    """A word of the catalogue in ``lang`` for a title, a header or a cell (a channel, a category, a kind of
    invoice line), its ``{placeholders}`` filled from ``params``; a key the catalogue lacks — a category added
    since — shows as its last part («category_industrial» → «industrial»)."""
    text = in_language(key, lang, **params)
    return key.split("_", 1)[-1] if text == key else text


@dataclass(frozen=True)
class Column:
    """One column: its key, the catalogue key of its header, and how its values are written.

    The header is read in the report's language when the report is shown or written (``title``). ``detail``
    fills the header's ``{detail}``: a catalogue key too (``kwh``, ``gcal``) or text kept as it is (an ageing
    bucket, «0-30»). A header starts with a capital letter, whatever word heads it (``channel_bank`` «банк» →
    «Банк»). ``places`` None is text; a number of places is a Decimal (or int) with that many digits after the
    point (2 = money). ``kind`` "date" holds ``datetime.date`` values.
    """

    key: str
    header: str
    detail: str = ""
    places: int | None = None
    kind: str = "text"
    width: int = 14

    def title(self, lang: str) -> str:
        text = word(self.header, lang, detail=word(self.detail, lang) if self.detail else "")
        return text[:1].upper() + text[1:]

    @property
    def numeric(self) -> bool:
        return self.places is not None

    def xlsx_format(self) -> str | None:
        if self.kind == "date":
            return "DD.MM.YYYY"
        if self.places is None:
            return None
        return MONEY_FORMAT if self.places == 2 else "#,##0" + ("." + "0" * self.places if self.places else "")


def money(key: str, header: str, detail: str = "", width: int = 14) -> Column:
    return Column(key, header, detail, places=2, width=width)


@dataclass
class Report:
    """A finished report: what a page shows and what a file holds, cell for cell."""

    kind: str
    title: str
    subtitle: str
    columns: tuple[Column, ...]
    rows: list[tuple] = field(default_factory=list)
    totals: tuple | None = None
    lang: str = "uk"
    chart: tuple[str, str] | None = None  # (label column, value column) for a bar chart on screen
    notes: tuple[str, ...] = ()
    marks: list[str] = field(default_factory=list)  # per row, a CSS class for the page (e.g. a long-overdue debt)

    def column(self, key: str) -> int:
        return next(i for i, c in enumerate(self.columns) if c.key == key)

    def values(self, key: str) -> list:
        index = self.column(key)
        return [row[index] for row in self.rows]

    def total(self, key: str):
        return self.totals[self.column(key)] if self.totals else None

    def headers(self) -> list[str]:
        """The column headers in the report's language, as the page, the CSV and the XLSX show them."""
        return [c.title(self.lang) for c in self.columns]

    def bars(self) -> list[tuple[str, Decimal, float]]:
        """(label, value, share of the largest 0…1) for the chart."""
        if not self.chart:
            return []
        labels, values = self.values(self.chart[0]), [Decimal(v or 0) for v in self.values(self.chart[1])]
        top = max(values, default=Decimal(0)) or Decimal(1)
        return [(f"{label:%d.%m}" if isinstance(label, date) else str(label), value, float(max(value, 0) / top))
                for label, value in zip(labels, values, strict=True)]


def totals_row(columns: Sequence[Column], rows: Sequence[tuple], label: str, summed: Sequence[str]) -> tuple:
    """The totals row: ``label`` in the first column, Σ of the ``summed`` columns, empty elsewhere."""
    out: list = [label] + [""] * (len(columns) - 1)
    for index, column in enumerate(columns):
        if column.key in summed:
            out[index] = sum((row[index] or 0 for row in rows), Decimal(0) if column.places else 0)
            if column.places:
                out[index] = Decimal(out[index]).quantize(Decimal(1).scaleb(-column.places))
    return tuple(out)


def _exact(value, column: Column) -> Decimal:
    """The value with the column's places; refuses to round (money is written exactly)."""
    number = Decimal(value)
    fixed = number.quantize(Decimal(1).scaleb(-column.places))
    if fixed != number:
        raise ValueError(f"column {column.key!r}: {value} has more than {column.places} decimal places")
    return fixed


def cell_text(value, column: Column, decimal_mark: str = CSV_DECIMAL) -> str:
    """A cell as text in a file: numbers without grouping and with ``decimal_mark``; dates ISO."""
    if value is None or value == "":
        return ""
    if column.numeric and isinstance(value, (Decimal, int)) and not isinstance(value, bool):
        return f"{_exact(value, column):f}".replace(".", decimal_mark)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _all_rows(report: Report) -> list[tuple]:
    return [*report.rows, *([report.totals] if report.totals else [])]


def _csv_cell(value, column: Column) -> str:
    # Neutralised before formatting: text that looks like a formula gets its apostrophe, a number never does.
    return neutralise(value) if isinstance(value, str) else cell_text(value, column)


def to_csv(report: Report) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=CSV_DELIMITER, lineterminator="\r\n")
    writer.writerow([neutralise(title) for title in report.headers()])
    for row in _all_rows(report):
        writer.writerow([_csv_cell(v, c) for v, c in zip(row, report.columns, strict=True)])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(report: Report) -> bytes:
    """Title and subtitle above a bold, frozen header row; money as numbers with ``#,##0.00``; totals bold.

    Written in openpyxl's write-only mode: a sheet of 100 000 accounts streams out in seconds.
    """
    book = Workbook(write_only=True)
    page = book.create_sheet(report.kind[:31])
    for index, column in enumerate(report.columns, start=1):
        page.column_dimensions[get_column_letter(index)].width = column.width
    page.freeze_panes = "A4"  # below the title, the subtitle and the header
    bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="bottom")

    def cell(value, font=None, number_format=None, alignment=None) -> WriteOnlyCell:
        written = WriteOnlyCell(page, value=workbook_text(value) if isinstance(value, str) else value)
        if isinstance(value, str):
            written.data_type = "s"  # text, whatever openpyxl would guess from a leading «=»
        if font:
            written.font = font
        if number_format:
            written.number_format = number_format
        if alignment:
            written.alignment = alignment
        return written

    page.append([cell(report.title, Font(bold=True, size=13))])
    page.append([cell(report.subtitle)])
    page.append([cell(title, bold, alignment=wrap) for title in report.headers()])
    formats = [c.xlsx_format() for c in report.columns]
    for row in report.rows:
        page.append([cell(_xlsx_value(v, c), None, f) for v, c, f in zip(row, report.columns, formats, strict=True)])
    if report.totals:
        page.append([cell(_xlsx_value(v, c), bold, f)
                     for v, c, f in zip(report.totals, report.columns, formats, strict=True)])
    for note in report.notes:
        page.append([])
        page.append([cell(note)])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _xlsx_value(value, column: Column):
    if value == "" or value is None:
        return None
    if column.numeric and isinstance(value, (Decimal, int)) and not isinstance(value, bool):
        fixed = _exact(value, column)
        return fixed if column.places else int(fixed)  # openpyxl writes a Decimal's own digits
    return value


def to_json(report: Report) -> str:
    """For scripts: every number as an exact string with a decimal point."""
    def row_json(row: tuple) -> dict:
        return {c.key: cell_text(v, c, ".") for v, c in zip(row, report.columns, strict=True)}

    return json.dumps({"kind": report.kind, "title": report.title, "subtitle": report.subtitle,
                       "columns": [{"key": c.key, "title": c.title(report.lang)} for c in report.columns],
                       "rows": [row_json(r) for r in report.rows],
                       "totals": row_json(report.totals) if report.totals else None},
                      ensure_ascii=False, indent=2)


def export(report: Report, fmt: str) -> tuple[bytes, str, str]:
    """(body, MIME type, file extension) of the report in ``fmt`` (csv, xlsx or json)."""
    if fmt == "csv":
        return to_csv(report), "text/csv; charset=utf-8", "csv"
    if fmt == "xlsx":
        return to_xlsx(report), XLSX_TYPE, "xlsx"
    if fmt == "json":
        return to_json(report).encode("utf-8"), "application/json", "json"
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
