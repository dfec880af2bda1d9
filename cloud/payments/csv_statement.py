"""Bank statements as CSV exports, read through a saved column mapping (mappings/*.toml, docs/payments.md).

Incoming rows become payments: a credit column that is filled, or a signed amount that is positive. Debit rows
(a filled debit column, a negative amount) are kept apart as ``outgoing``: a refund to a payer undoes their payment.
"""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path

from cloud.payments.statement import (
    IN,
    OUT,
    KeyMaker,
    StatementContents,
    StatementError,
    StatementTransaction,
    normalise_iban,
)

FIELDS = ("date", "value_date", "credit", "debit", "amount", "direction", "currency", "payer", "actual_payer",
          "payer_iban", "payer_code", "purpose", "reference", "document_number")
HEADER_SEARCH_ROWS = 40  # bank exports put a title block above the table
# Banks write the Latin «i» for the Ukrainian «і» (PrivatBank's «Дата операцiї»), and wrap long headers over
# lines: headers are compared with whitespace collapsed, case folded and the Latin letter read as Ukrainian.
HEADER_LETTERS = str.maketrans("iI", "іІ")


def header_key(text: str) -> str:
    return " ".join(text.split()).casefold().translate(HEADER_LETTERS)


class MappingError(ValueError):
    """A mapping file that cannot be used; names the file and the key."""


@dataclass(frozen=True)
class CsvMapping:
    """How to read one bank's CSV export: a saved, named column mapping."""

    name: str
    columns: dict[str, str]  # our field → the header in the bank's file
    optional: tuple[str, ...] = ()  # fields whose column some exports of this bank leave out
    encoding: str = "utf-8"
    delimiter: str | tuple[str, ...] = ";"  # several: the first one under which the header is found
    quotechar: str = '"'
    quoting: str = "minimal"  # minimal: "…" quotes a cell; none: quotes are plain text (PrivatBank)
    debit_words: tuple[str, ...] = ("дебет", "debit", "d")  # what the direction column says for money out
    credit_words: tuple[str, ...] = ("кредит", "credit", "c")
    date_formats: tuple[str, ...] = ("%d.%m.%Y",)
    decimal_comma: bool = True
    currency: str = "UAH"  # when the file has no currency column
    stop_at: tuple[str, ...] = ()  # a row whose first cell starts with one of these ends the table (totals)
    bank: str = ""
    notes: str = field(default="", compare=False)

    @classmethod
    def from_toml(cls, text: str, name: str) -> CsvMapping:
        data = tomllib.loads(text)
        columns = dict(data.get("columns", {}))
        unknown = sorted(set(columns) - set(FIELDS))
        if unknown:
            raise MappingError(f"mapping {name}: unknown column keys {unknown}; known: {', '.join(FIELDS)}")
        if "date" not in columns or not ({"credit", "amount"} & set(columns)):
            raise MappingError(f"mapping {name}: [columns] needs 'date' and either 'credit' or 'amount'")
        formats = data.get("date_formats", data.get("date_format", "%d.%m.%Y"))
        if "direction" in columns and "amount" not in columns:
            raise MappingError(f"mapping {name}: a 'direction' column goes with one 'amount' column")
        quoting = data.get("quoting", "minimal")
        if quoting not in ("minimal", "none"):
            raise MappingError(f"mapping {name}: quoting must be 'minimal' or 'none', got {quoting!r}")
        delimiter = data.get("delimiter", ";")
        words = {key: tuple(w.casefold() for w in data[key]) for key in ("debit_words", "credit_words") if key in data}
        optional = tuple(data.get("optional", ()))
        if set(optional) - set(columns) or {"date", "amount", "credit", "direction"} & set(optional):
            raise MappingError(f"mapping {name}: optional {list(optional)} must name [columns] other than date, "
                               "amount, credit and direction")
        return cls(name=data.get("name", name), columns=columns, optional=optional,
                   encoding=data.get("encoding", "utf-8"),
                   delimiter=delimiter if isinstance(delimiter, str) else tuple(delimiter),
                   quotechar=data.get("quotechar", '"'), quoting=quoting, **words,
                   date_formats=(formats,) if isinstance(formats, str) else tuple(formats),
                   decimal_comma=bool(data.get("decimal_comma", True)), currency=data.get("currency", "UAH"),
                   stop_at=tuple(data.get("stop_at", ())), bank=data.get("bank", ""), notes=data.get("notes", ""))

    @classmethod
    def load(cls, name: str) -> CsvMapping:
        """A shipped mapping by name (``privatbank-business``), or a path to a .toml file."""
        if name.endswith(".toml"):
            return cls.from_toml(Path(name).read_text(encoding="utf-8"), Path(name).stem)
        folder = resources.files("cloud.payments.mappings")
        source = folder.joinpath(f"{name}.toml")
        if not source.is_file():
            raise MappingError(f"no CSV mapping {name!r}; shipped: {', '.join(shipped_mappings())}")
        return cls.from_toml(source.read_text(encoding="utf-8"), name)


def shipped_mappings() -> list[str]:
    folder = resources.files("cloud.payments.mappings")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


class CsvImporter:
    """The StatementImporter for one bank's CSV layout."""

    def __init__(self, mapping: CsvMapping):
        self.mapping = mapping
        self.name = f"csv:{mapping.name}"

    def parse(self, data: bytes, filename: str) -> list[StatementTransaction]:
        return parse(data, filename, self.mapping)

    def parse_all(self, data: bytes, filename: str) -> StatementContents:
        return parse_all(data, filename, self.mapping)


def parse_amount(text: str, decimal_comma: bool) -> Decimal:
    """«1 250,40», «1.250,40», «-99.00», «1,250.40» → Decimal; raises InvalidOperation."""
    cleaned = "".join(text.split()).replace("\u2212", "-").replace("'", "")
    if decimal_comma:
        cleaned = cleaned.replace(".", "").replace(",", ".") if "," in cleaned else cleaned
    else:
        cleaned = cleaned.replace(",", "")
    value = Decimal(cleaned)
    if not value.is_finite() or value.as_tuple().exponent < -2:
        raise InvalidOperation(text)
    return value.quantize(Decimal("0.01"))


def parse(data: bytes, filename: str, mapping: CsvMapping) -> list[StatementTransaction]:
    """Every incoming row of the export, or a StatementError naming the line and column (nothing partial)."""
    return parse_all(data, filename, mapping).incoming


def parse_all(data: bytes, filename: str, mapping: CsvMapping) -> StatementContents:
    """Incoming rows and debit rows of the export, or a StatementError naming the line and column."""
    try:
        text = data.decode(mapping.encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise StatementError(filename, f"line {line}", f"byte {data[exc.start]:#04x} is not {mapping.encoding} "
                                                       f"text (mapping {mapping.name})") from exc
    delimiters = (mapping.delimiter,) if isinstance(mapping.delimiter, str) else mapping.delimiter
    first_error = None
    for delimiter in delimiters:
        if mapping.quoting == "none":
            rows = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=delimiter,
                              quoting=csv.QUOTE_NONE)
        else:
            rows = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=delimiter,
                              quotechar=mapping.quotechar, strict=True)
        table = _Table(filename, mapping, rows)
        try:
            index = table.header(data)
        except StatementError as exc:
            first_error = first_error or exc
            continue
        return table.transactions(index)
    raise first_error


class _Table:
    def __init__(self, filename: str, mapping: CsvMapping, rows):
        self.filename, self.mapping, self.rows = filename, mapping, rows
        self.keys = KeyMaker(filename)
        self.out_keys = KeyMaker(filename)
        self.line = 0

    def error(self, reason: str, column: str | None = None) -> StatementError:
        where = f"line {self.line}" + (f", column {column!r}" if column else "")
        return StatementError(self.filename, where, reason)

    def next_row(self) -> list[str] | None:
        first_line = self.rows.line_num + 1
        try:
            row = next(self.rows)
        except StopIteration:
            return None
        except csv.Error as exc:
            self.line = first_line
            raise self.error(f"not readable as CSV ({exc})") from exc
        self.line = first_line
        return row

    def header(self, data: bytes) -> dict[str, int]:
        wanted = {name: h for name, h in self.mapping.columns.items() if name not in self.mapping.optional}
        for _ in range(HEADER_SEARCH_ROWS):
            row = self.next_row()
            if row is None:
                break
            cells = [header_key(c) for c in row]
            if all(header_key(h) in cells for h in wanted.values()):
                return {name: cells.index(header_key(h)) for name, h in self.mapping.columns.items()
                        if header_key(h) in cells}
        hint = ""
        if self.mapping.encoding.lower() in ("cp1251", "windows-1251"):
            try:
                data.decode("utf-8")
                hint = "; the file looks like UTF-8 — is this the right mapping?"
            except UnicodeDecodeError:
                pass
        raise StatementError(self.filename, "header", f"no row with the columns {sorted(wanted.values())} in the "
                                                      f"first {HEADER_SEARCH_ROWS} rows (mapping {self.mapping.name})"
                                                      + hint)

    def transactions(self, index: dict[str, int]) -> StatementContents:
        width = max(index.values()) + 1
        found, outgoing = [], []
        while (row := self.next_row()) is not None:
            if not any(cell.strip() for cell in row):
                continue
            if self.mapping.stop_at and row[0].strip().startswith(self.mapping.stop_at):
                break
            if len(row) < width:
                raise self.error(f"{len(row)} cells, but the mapping {self.mapping.name} needs {width}")
            cell = {name: row[i].strip() for name, i in index.items()}
            if "direction" in cell:
                self.directed(cell, found, outgoing)
                continue
            amount = self.amount(cell)
            if amount is not None:
                found.append(self.transaction(cell, amount))
            elif (debit := self.debit(cell)) is not None:
                outgoing.append(self.transaction(cell, debit, OUT))
        return StatementContents(found, outgoing)

    def directed(self, cell: dict[str, str], found: list, outgoing: list) -> None:
        """A row whose direction column says credit or debit; a signed amount must agree with it."""
        columns = self.mapping.columns
        said = cell["direction"].casefold()
        if said not in self.mapping.debit_words + self.mapping.credit_words:
            raise self.error(f"direction {cell['direction']!r} is neither "
                             f"{'/'.join(self.mapping.credit_words)} nor {'/'.join(self.mapping.debit_words)}",
                             columns["direction"])
        try:
            value = parse_amount(cell["amount"], self.mapping.decimal_comma)
        except InvalidOperation:
            raise self.error(f"not an amount: {cell['amount']!r}", columns["amount"]) from None
        debit = said in self.mapping.debit_words
        if (debit and value > 0) or (not debit and value < 0):
            raise self.error(f"{cell['direction']} with the amount {cell['amount']}: the sign says the other "
                             "direction", columns["amount"])
        if value:
            (outgoing if debit else found).append(self.transaction(cell, abs(value), OUT if debit else IN))

    def debit(self, cell: dict[str, str]) -> Decimal | None:
        """The amount of a debit row (money out), positive; None when the row is not one."""
        if "credit" in cell:
            raw, column = cell.get("debit", ""), self.mapping.columns.get("debit", "")
        else:
            raw, column = cell["amount"], self.mapping.columns["amount"]
        if not raw:
            return None
        try:
            value = parse_amount(raw, self.mapping.decimal_comma)
        except InvalidOperation:
            raise self.error(f"not an amount: {raw!r}", column) from None
        value = abs(value) if "credit" in cell else -value
        return value if value > 0 else None

    def amount(self, cell: dict[str, str]) -> Decimal | None:
        columns = self.mapping.columns
        name = "credit" if "credit" in cell else "amount"
        raw = cell[name]
        if not raw:
            return None  # a debit row (its amount is in the debit column)
        try:
            value = parse_amount(raw, self.mapping.decimal_comma)
        except InvalidOperation:
            raise self.error(f"not an amount: {raw!r}", columns[name]) from None
        if name == "credit" and value < 0:
            raise self.error(f"a credit cannot be negative: {raw!r}", columns[name])
        if name == "credit" and cell.get("debit"):
            try:
                debit = parse_amount(cell["debit"], self.mapping.decimal_comma)
            except InvalidOperation:
                raise self.error(f"not an amount: {cell['debit']!r}", columns["debit"]) from None
            if debit and value:
                raise self.error(f"both debit ({cell['debit']}) and credit ({raw}) are filled", columns[name])
        return value if value > 0 else None

    def date(self, text: str, column: str) -> date:
        for pattern in self.mapping.date_formats:
            try:
                return datetime.strptime(text, pattern).date()
            except ValueError:
                continue
        raise self.error(f"not a date: {text!r} (expected {' or '.join(self.mapping.date_formats)})",
                         self.mapping.columns[column])

    def transaction(self, cell: dict[str, str], amount: Decimal, direction: str = IN) -> StatementTransaction:
        booked = self.date(cell["date"], "date")
        value_date = self.date(cell["value_date"], "value_date") if cell.get("value_date") else None
        currency = (cell.get("currency") or self.mapping.currency).upper()
        if currency == "ГРН":
            currency = "UAH"
        # The actual payer (фактичний платник) when the bank names one, as camt.053's UltmtDbtr.
        payer = " ".join((cell.get("actual_payer") or cell.get("payer", "")).split())
        iban = normalise_iban(cell.get("payer_iban", ""))
        purpose, reference = " ".join(cell.get("purpose", "").split()), cell.get("reference", "")
        decisive = (cell["date"], amount, currency, iban, cell.get("payer_code", ""), payer, purpose,
                    cell.get("document_number", ""))
        where = f"line {self.line}"
        key = self.keys.key(reference, decisive, where) if direction == IN else \
            f"{direction}:{self.out_keys.key(reference, decisive, where)}"
        return StatementTransaction(
            key=key, booked=booked, value_date=value_date, amount=amount, currency=currency, payer=payer,
            payer_iban=iban, purpose=purpose, bank_reference=reference, source=where, direction=direction)
