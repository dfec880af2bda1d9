"""ISO 20022 camt.053 bank statements: booked incoming entries (CRDT, BOOK, not reversed), one transaction
per TxDtls (an entry may carry several), with payer, IBAN, purpose and the bank's reference.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal, InvalidOperation

from cloud.payments.statement import StatementError, StatementTransaction


class _Tree:
    """Lookups in the statement's namespace (camt.053.001.02 … .13) through ElementTree's C code."""

    def __init__(self, root):
        self.prefix = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""

    def path(self, names) -> str:
        return "/".join(f"{self.prefix}{name}" for name in names)

    def child(self, element, *names):
        return None if element is None else element.find(self.path(names))

    def children(self, element, name):
        return [] if element is None else element.findall(self.path((name,)))

    def text(self, element, *names) -> str:
        if element is None:
            return ""
        found = element.findtext(self.path(names))
        return found.strip() if found else ""


def parse(data: bytes, filename: str = "statement.xml") -> list[StatementTransaction]:
    """All booked incoming payments of the file, or a StatementError naming the element (nothing partial)."""
    head = data[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise StatementError(filename, "prolog", "DTDs and entities are not allowed in a statement")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise StatementError(filename, f"line {exc.position[0]}", f"not well-formed XML ({exc})") from exc
    tree = _Tree(root)
    statement_root = tree.child(root, "BkToCstmrStmt")
    if root.tag.rsplit("}", 1)[-1] != "Document" or statement_root is None:
        raise StatementError(filename, "Document", "not a camt.053 statement (no BkToCstmrStmt)")
    found: list[StatementTransaction] = []
    for s, statement in enumerate(tree.children(statement_root, "Stmt"), start=1):
        for n, entry in enumerate(tree.children(statement, "Ntry"), start=1):
            where = f"Stmt[{s}]/Ntry[{n}]"
            if tree.text(entry, "CdtDbtInd") != "CRDT":
                continue
            status = tree.text(entry, "Sts", "Cd") or tree.text(entry, "Sts")
            if status and status != "BOOK":
                continue
            if tree.text(entry, "RvslInd").lower() == "true":
                continue
            booked_text = tree.text(entry, "BookgDt", "Dt") or tree.text(entry, "BookgDt", "DtTm")[:10] \
                or tree.text(entry, "ValDt", "Dt")
            try:
                booked = date.fromisoformat(booked_text)
            except ValueError as exc:
                raise StatementError(filename, f"{where}/BookgDt", f"not a date: {booked_text!r}") from exc
            entry_amount = _amount(tree, entry, filename, where)
            entry_ref = tree.text(entry, "AcctSvcrRef")
            details = tree.children(tree.child(entry, "NtryDtls"), "TxDtls")
            if not details:
                found.append(_transaction(tree, entry, None, booked, entry_amount, entry_ref, where))
                continue
            amounts = []
            for t, tx in enumerate(details, start=1):
                tx_where = f"{where}/TxDtls[{t}]"
                amount = _amount(tree, tx, filename, tx_where) if tree.child(tx, "Amt") is not None else None
                amounts.append(amount)
                ref = tree.text(tx, "Refs", "AcctSvcrRef") or (f"{entry_ref}/{t}" if entry_ref and len(details) > 1
                                                           else entry_ref)
                found.append(_transaction(tree, entry, tx, booked, amount if amount is not None else entry_amount, ref,
                                          tx_where))
            if len(details) > 1 and None not in amounts:
                total = sum((a[0] for a in amounts), Decimal(0))
                if total != entry_amount[0]:
                    raise StatementError(filename, where, f"transactions add up to {total}, the entry says "
                                                          f"{entry_amount[0]}")
    return found


def _amount(tree, element, filename: str, where: str) -> tuple[Decimal, str]:
    node = tree.child(element, "Amt")
    if node is None or not (node.text or "").strip():
        raise StatementError(filename, f"{where}/Amt", "amount is missing")
    try:
        value = Decimal(node.text.strip())
    except InvalidOperation as exc:
        raise StatementError(filename, f"{where}/Amt", f"not an amount: {node.text!r}") from exc
    if value <= 0:
        raise StatementError(filename, f"{where}/Amt", f"must be positive, got {value}")
    return value, node.get("Ccy", "UAH")


def _transaction(tree, entry, tx, booked, amount, reference, where) -> StatementTransaction:
    value, currency = amount
    parties = tree.child(tx, "RltdPties") if tx is not None else None
    payer = (tree.text(parties, "UltmtDbtr", "Nm") or tree.text(parties, "UltmtDbtr", "Pty", "Nm")
             or tree.text(parties, "Dbtr", "Nm") or tree.text(parties, "Dbtr", "Pty", "Nm"))
    iban = tree.text(parties, "DbtrAcct", "Id", "IBAN")
    info = tree.child(tx, "RmtInf") if tx is not None else tree.child(entry, "NtryDtls", "TxDtls", "RmtInf")
    purpose = " ".join(u.text.strip() for u in tree.children(info, "Ustrd") if u.text)
    structured = tree.text(info, "Strd", "CdtrRefInf", "Ref")
    if structured:
        purpose = f"{purpose} {structured}".strip()
    purpose = purpose or tree.text(entry, "AddtlNtryInf")
    end_to_end = tree.text(tx, "Refs", "EndToEndId") if tx is not None else ""
    if not reference and end_to_end and end_to_end != "NOTPROVIDED":
        reference = end_to_end
    return StatementTransaction(booked, value, currency, payer, iban.replace(" ", ""), purpose, reference, where)
