"""Bank statements as CSV exports, read through a saved column mapping (mappings/*.toml, docs/payments.md)."""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources

from cloud.payments.statement import StatementError, StatementTransaction


@dataclass(frozen=True)
class CsvMapping:
    name: str
    encoding: str
    delimiter: str
    date_format: str
    decimal_comma: bool
    skip_rows: int
    columns: dict[str, str]  # our field → the header in the bank's file
    credit_only_positive: bool  # one signed amount column: keep the positive (incoming) rows

    @classmethod
    def load(cls, name: str) -> CsvMapping:
        try:
            text = resources.files("cloud.payments.mappings").joinpath(f"{name}.toml").read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            known = sorted(p.name[:-5] for p in resources.files("cloud.payments.mappings").iterdir()
                           if p.name.endswith(".toml"))
            raise ValueError(f"no CSV mapping {name!r}; known: {', '.join(known)}") from exc
        data = tomllib.loads(text)
        return cls(name=name, encoding=data.get("encoding", "utf-8"), delimiter=data.get("delimiter", ";"),
                   date_format=data.get("date_format", "%d.%m.%Y"), decimal_comma=data.get("decimal_comma", True),
                   skip_rows=data.get("skip_rows", 0), columns=dict(data["columns"]),
                   credit_only_positive=data.get("credit_only_positive", False))


def _decimal(text: str, mapping: CsvMapping) -> Decimal:
    cleaned = text.strip().replace("\u00a0", "").replace(" ", "")
    if mapping.decimal_comma:
        cleaned = cleaned.replace(".", "").replace(",", ".") if cleaned.count(",") == 1 else cleaned
    return Decimal(cleaned)


def parse(data: bytes, filename: str, mapping: CsvMapping) -> list[StatementTransaction]:
    try:
        text = data.decode(mapping.encoding)
    except UnicodeDecodeError as exc:
        raise StatementError(filename, f"byte {exc.start}", f"not {mapping.encoding} text") from exc
    lines = text.lstrip("\ufeff").splitlines()[mapping.skip_rows:]
    reader = csv.DictReader(io.StringIO("\n".join(lines)), delimiter=mapping.delimiter)
    missing = [header for header in mapping.columns.values() if header not in (reader.fieldnames or [])]
    if missing:
        raise StatementError(filename, f"line {mapping.skip_rows + 1}",
                             f"columns {missing} not found (mapping {mapping.name}); the file has {reader.fieldnames}")
    found = []
    for number, row in enumerate(reader, start=mapping.skip_rows + 2):
        where = f"line {number}"
        column = mapping.columns
        try:
            if "credit" in column:
                raw = (row.get(column["credit"]) or "").strip()
                if not raw:
                    continue  # a debit row
                amount = _decimal(raw, mapping)
            else:
                amount = _decimal(row[column["amount"]], mapping)
                if mapping.credit_only_positive and amount <= 0:
                    continue
        except (InvalidOperation, KeyError) as exc:
            header = column.get("credit", column.get("amount"))
            raise StatementError(filename, f"{where}, column {header!r}",
                                 f"not an amount: {row.get(header)!r}") from exc
        if amount <= 0:
            raise StatementError(filename, where, f"amount must be positive, got {amount}")
        raw_date = (row.get(column["date"]) or "").strip()
        try:
            booked = datetime.strptime(raw_date[:len(date.today().strftime(mapping.date_format))],
                                       mapping.date_format).date()
        except ValueError as exc:
            raise StatementError(filename, f"{where}, column {column['date']!r}",
                                 f"not a date in {mapping.date_format}: {raw_date!r}") from exc
        found.append(StatementTransaction(
            booked=booked, amount=amount, currency=(row.get(column.get("currency", ""), "") or "UAH").strip() or "UAH",
            payer=(row.get(column.get("payer", ""), "") or "").strip(),
            payer_iban=(row.get(column.get("payer_iban", ""), "") or "").replace(" ", "").strip(),
            purpose=(row.get(column.get("purpose", ""), "") or "").strip(),
            reference=(row.get(column.get("reference", ""), "") or "").strip(), source=where,
        ))
    return found
