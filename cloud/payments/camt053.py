"""ISO 20022 camt.053 bank statements (camt.053.001.02 … .13): booked incoming payments, one per TxDtls.

Rules (shared/FACTS.md): entries BkToCstmrStmt/Stmt/Ntry; only booked (Sts or Sts/Cd = BOOK); CRDT entries are
payments, except RvslInd=true ones (a debit of ours coming back); DBIT entries are kept apart as ``outgoing``
(RvslInd=true: the bank took a credit back; otherwise a refund or the organisation's own payment) so that
reversals and refunds can undo the payment they belong to. An entry with several TxDtls gives several
transactions whose amounts add up to it.
"""

from __future__ import annotations

import gc
import re
import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal, InvalidOperation
from xml.parsers import expat

from cloud.payments.statement import (
    IN,
    OUT,
    REVERSAL,
    KeyMaker,
    StatementContents,
    StatementError,
    StatementTransaction,
    normalise_iban,
)
from shared.calendar import kyiv_day, parse_iso

NAMESPACE = re.compile(r"urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(\d\d)")
VERSIONS = range(2, 14)
NOT_PROVIDED = "NOTPROVIDED"


class _Prolog(Exception):
    """Raised inside expat to stop the prolog check at the root element."""


def refuse_dtd(data: bytes, filename: str) -> None:
    """A statement has no business declaring a DTD or entities: refuse them before building the tree.

    Expat reads only up to the root element here (a DTD can only come before it), so this costs nothing
    on a large file, and the real parse below never sees an entity to expand (billion laughs, XXE).
    """
    parser = expat.ParserCreate()

    def doctype(*_args):
        raise StatementError(filename, "prolog", "a DTD (<!DOCTYPE …>) is not allowed in a bank statement")

    def root(*_args):
        raise _Prolog

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    parser.StartElementHandler = root
    try:
        parser.Parse(data, True)
    except _Prolog:
        return
    except expat.ExpatError as exc:
        raise StatementError(filename, f"line {exc.lineno}, column {exc.offset + 1}",
                             f"not well-formed XML ({expat.ErrorString(exc.code)})") from exc


class _Paths:
    """Qualified tags for the file's namespace, built once per path; single-tag steps stay in C code."""

    def __init__(self, namespace: str):
        self.ns = f"{{{namespace}}}" if namespace else ""
        self._steps: dict[str, tuple[str, ...]] = {}

    def __call__(self, tag: str) -> str:
        return self.ns + tag

    def find(self, element, path: str):
        steps = self._steps.get(path)
        if steps is None:
            steps = self._steps[path] = tuple(self.ns + part for part in path.split("/"))
        for tag in steps:
            element = element.find(tag)
            if element is None:
                return None
        return element


class Camt053Importer:
    """The StatementImporter for camt.053 files."""

    name = "camt053"

    def parse(self, data: bytes, filename: str) -> list[StatementTransaction]:
        return parse(data, filename)

    def parse_all(self, data: bytes, filename: str) -> StatementContents:
        return parse_all(data, filename)


def parse(data: bytes, filename: str = "statement.xml") -> list[StatementTransaction]:
    """Every booked incoming payment of the file, or a StatementError naming the element (nothing partial)."""
    return parse_all(data, filename).incoming


def parse_all(data: bytes, filename: str = "statement.xml") -> StatementContents:
    """Booked payments in and booked debits out (reversals, refunds …), or a StatementError (nothing partial)."""
    refuse_dtd(data, filename)
    # A big statement is millions of tree objects without cycles; the cyclic collector would walk them over
    # and over while they are built (half the time of a 100 000-transaction file), so it waits until the end.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse(data, filename)
    finally:
        if collecting:
            gc.enable()


def _parse(data: bytes, filename: str) -> StatementContents:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line, column = exc.position
        raise StatementError(filename, f"line {line}, column {column + 1}", f"not well-formed XML ({exc})") from exc
    namespace, _, local = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
    version = NAMESPACE.fullmatch(namespace)
    if local != "Document" or (namespace and (not version or int(version.group(1)) not in VERSIONS)):
        raise StatementError(filename, local, f"not a camt.053.001.02–13 document (root {local!r}, "
                                              f"namespace {namespace or 'none'!r})")
    p = _Paths(namespace)
    group = root.find(p("BkToCstmrStmt"))
    if group is None:
        raise StatementError(filename, "Document", "no BkToCstmrStmt: not a bank-to-customer statement")
    reader = _Reader(filename, p)
    incoming = reader.statements(group)
    return StatementContents(incoming, reader.outgoing)


class _Reader:
    def __init__(self, filename: str, p: _Paths):
        self.filename, self.p = filename, p
        self.keys = KeyMaker(filename)
        # Debits get their own keys: a reversal may carry the very reference of the credit it takes back.
        self.out_keys = KeyMaker(filename)
        self.outgoing: list[StatementTransaction] = []
        self.tag_stmt, self.tag_ntry, self.tag_ntry_dtls, self.tag_tx = p("Stmt"), p("Ntry"), p("NtryDtls"), p("TxDtls")
        self.tag_amt, self.tag_ustrd, self.tag_strd = p("Amt"), p("Ustrd"), p("Strd")

    def error(self, where: str, reason: str) -> StatementError:
        return StatementError(self.filename, where, reason)

    def text(self, element, path: str) -> str:
        found = self.p.find(element, path)
        text = found.text if found is not None else None
        return " ".join(text.split()) if text else ""

    def statements(self, group) -> list[StatementTransaction]:
        found: list[StatementTransaction] = []
        for s, statement in enumerate(group.findall(self.tag_stmt), start=1):
            iban = normalise_iban(self.text(statement, "Acct/Id/IBAN"))
            for n, entry in enumerate(statement.findall(self.tag_ntry), start=1):
                found.extend(self.entry(entry, iban, f"Document/BkToCstmrStmt/Stmt[{s}]/Ntry[{n}]"))
        return found

    def entry(self, entry, statement_iban: str, where: str) -> list[StatementTransaction]:
        direction = self.text(entry, "CdtDbtInd")
        if direction not in ("CRDT", "DBIT"):
            raise self.error(f"{where}/CdtDbtInd", f"expected CRDT or DBIT, got {direction!r}")
        status = entry.find(self.p("Sts"))
        if status is None:
            raise self.error(f"{where}/Sts", "the entry has no status (BOOK, PDNG, INFO …)")
        code = self.text(status, "Cd") or self.text(status, "Prtry") or (status.text or "").strip()
        if code != "BOOK":
            return []  # pending or information only: it comes again once booked
        reversal = self.text(entry, "RvslInd").lower() in ("true", "1")
        if direction == "CRDT" and reversal:
            return []  # a debit of ours coming back (a refund that bounced): not a resident's payment
        flow = IN if direction == "CRDT" else REVERSAL if reversal else OUT
        amount, currency = self.amount(entry.find(self.tag_amt), f"{where}/Amt")
        booked = self.date(entry, "BookgDt", where)
        value_date = self.date(entry, "ValDt", where)
        if booked is None:
            booked = value_date
        if booked is None:
            raise self.error(f"{where}/BookgDt", "a booked entry needs a booking date (BookgDt) or a value date (ValDt)")
        details = [(f"{where}/NtryDtls[{d}]/TxDtls[{t}]", tx)
                   for d, block in enumerate(entry.findall(self.tag_ntry_dtls), start=1)
                   for t, tx in enumerate(block.findall(self.tag_tx), start=1)]
        common = (entry, booked, value_date, currency, statement_iban, flow)
        entry_ref = self.text(entry, "AcctSvcrRef")
        if len(details) <= 1:
            tx_where, tx = details[0] if details else (where, None)
            reference = (self.text(tx, "Refs/AcctSvcrRef") if tx is not None else "") or entry_ref
            return self.sorted(flow, [self.transaction(common, tx, amount, reference, 1, tx_where)])
        found, total = [], Decimal(0)
        for position, (tx_where, tx) in enumerate(details, start=1):
            node = tx.find(self.tag_amt)
            node = self.p.find(tx, "AmtDtls/TxAmt/Amt") if node is None else node
            if node is None:
                raise self.error(f"{tx_where}/Amt", f"an entry with {len(details)} transactions needs each one's amount")
            tx_amount, tx_currency = self.amount(node, f"{tx_where}/Amt")
            if tx_currency != currency:
                raise self.error(f"{tx_where}/Amt", f"currency {tx_currency} differs from the entry's {currency}")
            total += tx_amount
            reference = self.text(tx, "Refs/AcctSvcrRef") or (f"{entry_ref}#{position}" if entry_ref else "")
            found.append(self.transaction(common, tx, tx_amount, reference, position, tx_where))
        if total != amount:
            raise self.error(f"{where}/Amt", f"the entry says {amount} {currency} but its {len(details)} "
                                             f"transactions add up to {total}")
        return self.sorted(flow, found)

    def sorted(self, flow: str, found: list[StatementTransaction]) -> list[StatementTransaction]:
        """Payments in are returned; debits go to ``outgoing``."""
        if flow == IN:
            return found
        self.outgoing.extend(found)
        return []

    def transaction(self, common, tx, amount: Decimal, reference: str, position: int, where: str):
        entry, booked, value_date, currency, statement_iban, flow = common
        if tx is None:
            payer = iban = end_to_end = structured = ""
            purpose = self.text(entry, "AddtlNtryInf")
        else:
            payer, iban = self.counterpart(tx, flow, statement_iban)
            end_to_end = self.text(tx, "Refs/EndToEndId")
            end_to_end = "" if end_to_end.upper() == NOT_PROVIDED else end_to_end
            remittance = tx.find(self.p("RmtInf"))
            purpose = structured = ""
            if remittance is not None:
                purpose = " ".join(" ".join((u.text or "").split()) for u in remittance.findall(self.tag_ustrd)).strip()
                structured = " ".join(self.text(s, "CdtrRefInf/Ref") for s in remittance.findall(self.tag_strd)).strip()
            purpose = purpose or self.text(tx, "AddtlTxInf") or self.text(entry, "AddtlNtryInf")
        decisive = (statement_iban, booked, amount, currency, iban, payer, purpose, structured, end_to_end, position)
        key = self.keys.key(reference, decisive, where) if flow == IN else \
            f"{flow}:{self.out_keys.key(reference, decisive, where)}"
        return StatementTransaction(
            key=key, booked=booked, value_date=value_date, amount=amount,
            currency=currency, payer=payer, payer_iban=iban, purpose=purpose, structured_reference=structured,
            bank_reference=reference, end_to_end_id=end_to_end, statement_iban=statement_iban, source=where,
            direction=flow)

    def counterpart(self, tx, flow: str, statement_iban: str) -> tuple[str, str]:
        """The payer of a credit; for a debit whoever got the money (the creditor — or, in a reversal that
        copies the original parties, the debtor when that is not us)."""
        debtor = (self.text(tx, "RltdPties/UltmtDbtr/Nm") or self.text(tx, "RltdPties/UltmtDbtr/Pty/Nm")
                  or self.text(tx, "RltdPties/Dbtr/Nm") or self.text(tx, "RltdPties/Dbtr/Pty/Nm"))
        debtor_iban = normalise_iban(self.text(tx, "RltdPties/DbtrAcct/Id/IBAN"))
        if flow == IN:
            return debtor, debtor_iban
        creditor = (self.text(tx, "RltdPties/UltmtCdtr/Nm") or self.text(tx, "RltdPties/UltmtCdtr/Pty/Nm")
                    or self.text(tx, "RltdPties/Cdtr/Nm") or self.text(tx, "RltdPties/Cdtr/Pty/Nm"))
        creditor_iban = normalise_iban(self.text(tx, "RltdPties/CdtrAcct/Id/IBAN"))
        if creditor_iban and creditor_iban != statement_iban:
            return creditor, creditor_iban
        if debtor_iban and debtor_iban != statement_iban:
            return debtor, debtor_iban
        return creditor or debtor, ""

    def amount(self, node, where: str) -> tuple[Decimal, str]:
        text = (node.text or "").strip() if node is not None else ""
        if not text:
            raise self.error(where, "the amount is missing")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise self.error(where, f"not an amount: {text!r} (expected digits with a decimal point)") from None
        if not value.is_finite() or value.as_tuple().exponent < -2:
            raise self.error(where, f"not an amount in kopecks: {text!r}")
        if value <= 0:
            raise self.error(where, f"an entry's amount must be positive (the direction is CdtDbtInd), got {text}")
        currency = (node.get("Ccy") or "").strip()
        if not currency:
            raise self.error(where, "the amount has no currency (Ccy attribute)")
        return value.quantize(Decimal("0.01")), currency

    def date(self, entry, name: str, where: str) -> date | None:
        node = entry.find(self.p(name))
        if node is None:
            return None
        text = self.text(node, "Dt")
        if not text:  # a time: with an offset, the day it is in Kyiv; without one, the bank's own (local) day
            text = self.text(node, "DtTm")
            try:
                return kyiv_day(parse_iso(text)) if re.search(r"(Z|[+-]\d\d:?\d\d)$", text) else date.fromisoformat(text[:10])
            except ValueError:
                raise self.error(f"{where}/{name}", f"not a date and time: {text!r}") from None
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise self.error(f"{where}/{name}", f"not a date: {text!r} (expected YYYY-MM-DD)") from None
