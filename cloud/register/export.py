"""The register as the office keeps it in Excel: one row per account and meter (an account without a meter is
one row), every column of ``fields.FIELDS`` under its Ukrainian header. Read back by the import, it changes
nothing; text a spreadsheet would run as a formula is written with an apostrophe in front (and read back
without it)."""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.models import Account, Line, Meter, Organisation, Site
from cloud.register.fields import ACCOUNT_KEYS, FIELDS, as_text
from shared.spreadsheet_cells import neutralise, workbook_text

ACCOUNTS, METERS = Account.__table__, Meter.__table__


def register_rows(db: Session, org: Organisation, site_id: int | None = None) -> list[list[str]]:
    """Every account of ``org`` (of one site when given) with its meters, in account-number order."""
    sites = dict(db.execute(select(Site.id, Site.code).where(Site.org_id == org.id)).all())
    lines = dict(db.execute(select(Line.id, Line.number).where(Line.org_id == org.id)).all())
    meters: dict[int, list] = {}
    for account_id, code, line_id, profile in db.execute(
            select(METERS.c.account_id, METERS.c.code, METERS.c.line_id, METERS.c.profile)
            .where(METERS.c.org_id == org.id, METERS.c.removed_at.is_(None), METERS.c.account_id.is_not(None))
            .order_by(METERS.c.code)):
        meters.setdefault(account_id, []).append((code, lines.get(line_id, ""), profile or ""))
    query = select(*[ACCOUNTS.c[k] for k in ("id", "number", "site_id", *ACCOUNT_KEYS)]) \
        .where(ACCOUNTS.c.org_id == org.id).order_by(ACCOUNTS.c.number)
    if site_id is not None:
        query = query.where(ACCOUNTS.c.site_id == site_id)
    rows = []
    for account in db.execute(query).mappings():
        own = {"number": account["number"], "site": sites.get(account["site_id"], ""),
               **{k: as_text(account[k]) for k in ACCOUNT_KEYS}}
        for code, line, profile in meters.get(account["id"]) or [("", "", "")]:
            values = {**own, "meter": code, "line": line, "profile": profile}
            rows.append([values[f.key] for f in FIELDS])
    return rows


def headers() -> list[str]:
    return [field.uk for field in FIELDS]


def to_csv(rows: list[list[str]]) -> bytes:
    """«;» between cells and a BOM: what Excel in Ukraine opens without asking."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(headers())
    writer.writerows([[neutralise(cell) for cell in row] for row in rows])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(rows: list[list[str]]) -> bytes:
    """Every cell text (an account number keeps its leading zeros), the header bold and frozen."""
    book = Workbook(write_only=True)
    page = book.create_sheet("Реєстр")
    page.freeze_panes = "A2"
    for index, field in enumerate(FIELDS, start=1):
        page.column_dimensions[get_column_letter(index)].width = max(12, min(40, len(field.uk) + 4))
    bold = Font(bold=True)

    def cell(text: str, font=None) -> WriteOnlyCell:
        written = WriteOnlyCell(page, value=workbook_text(text) if text else None)
        written.data_type = "s" if text else written.data_type
        if font is not None:
            written.font = font
        return written

    page.append([cell(title, bold) for title in headers()])
    for row in rows:
        page.append([cell(value) for value in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
