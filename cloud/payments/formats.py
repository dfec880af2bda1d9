"""Which importer reads which statement format: ``camt053`` or ``csv:<mapping>`` (a shipped name or a .toml path)."""

from __future__ import annotations

from cloud.payments.camt053 import Camt053Importer
from cloud.payments.csv_statement import CsvImporter, CsvMapping, MappingError, shipped_mappings
from cloud.payments.statement import (
    StatementContents,
    StatementError,
    StatementImporter,
    StatementTransaction,
)


def importer_for(fmt: str) -> StatementImporter:
    """The importer for a ``--format`` value; ValueError naming the known formats otherwise."""
    if fmt == "camt053":
        return Camt053Importer()
    if fmt.startswith("csv:"):
        return CsvImporter(CsvMapping.load(fmt[4:]))
    known = ", ".join(["camt053", *(f"csv:{name}" for name in shipped_mappings())])
    raise MappingError(f"unknown statement format {fmt!r}; known: {known} (or csv:path/to/mapping.toml)")


def parse_statement(data: bytes, filename: str, fmt: str) -> list[StatementTransaction]:
    """Parse a whole statement file in the given format: every payment, or a StatementError (atomic)."""
    try:
        importer = importer_for(fmt)
    except MappingError as exc:
        raise StatementError(filename, "format", str(exc)) from exc
    return importer.parse(data, filename)


def parse_statement_all(data: bytes, filename: str, fmt: str) -> StatementContents:
    """Payments in and debits out (reversals, refunds) of a whole statement file, or a StatementError (atomic)."""
    try:
        importer = importer_for(fmt)
    except MappingError as exc:
        raise StatementError(filename, "format", str(exc)) from exc
    return importer.parse_all(data, filename)
