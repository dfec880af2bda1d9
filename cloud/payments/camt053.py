"""ISO 20022 camt.053 bank statements: booked incoming entries (CRDT, BOOK, not reversed), one transaction
per TxDtls (an entry may carry several), with payer, IBAN, purpose and the bank's reference.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal, InvalidOperation

from cloud.payments.statement import StatementError, StatementTransaction


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element, *path):
    for name in path:
        if element is None:
            return None
        element = next((c for c in element if _local(c.tag) == name), None)
    return element


def _children(element, name):
    return [c for c in element if _local(c.tag) == name] if element is not None else []


def _text(element, *path) -> str:
    found = _child(element, *path)
    return (found.text or "").strip() if found is not None and found.text else ""


def parse(data: bytes, filename: str = "statement.xml") -> list[StatementTransaction]:
    """All booked incoming payments of the file, or a StatementError naming the element (nothing partial)."""
    head = data[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise StatementError(filename, "prolog", "DTDs and entities are not allowed in a statement")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise StatementError(filename, f"line {exc.position[0]}", f"not well-formed XML ({exc})") from exc
    statement_root = _child(root, "BkToCstmrStmt")
    if _local(root.tag) != "Document" or statement_root is None:
        raise StatementError(filename, "Document", "not a camt.053 statement (no BkToCstmrStmt)")
    found: list[StatementTransaction] = []
    for s, statement in enumerate(_children(statement_root, "Stmt"), start=1):
        for n, entry in enumerate(_children(statement, "Ntry"), start=1):
            where = f"Stmt[{s}]/Ntry[{n}]"
            if _text(entry, "CdtDbtInd") != "CRDT":
                continue
            status = _text(entry, "Sts", "Cd") or _text(entry, "Sts")
            if status and status != "BOOK":
                continue
            if _text(entry, "RvslInd").lower() == "true":
                continue
            booked_text = _text(entry, "BookgDt", "Dt") or _text(entry, "BookgDt", "DtTm")[:10] \
                or _text(entry, "ValDt", "Dt")
            try:
                booked = date.fromisoformat(booked_text)
            except ValueError as exc:
                raise StatementError(filename, f"{where}/BookgDt", f"not a date: {booked_text!r}") from exc
            entry_amount = _amount(entry, filename, where)
            entry_ref = _text(entry, "AcctSvcrRef")
            details = _children(_child(entry, "NtryDtls"), "TxDtls")
            if not details:
                found.append(_transaction(entry, None, booked, entry_amount, entry_ref, where))
                continue
            amounts = []
            for t, tx in enumerate(details, start=1):
                tx_where = f"{where}/TxDtls[{t}]"
                amount = _amount(tx, filename, tx_where) if _child(tx, "Amt") is not None else None
                amounts.append(amount)
                ref = _text(tx, "Refs", "AcctSvcrRef") or (f"{entry_ref}/{t}" if entry_ref and len(details) > 1
                                                           else entry_ref)
                found.append(_transaction(entry, tx, booked, amount if amount is not None else entry_amount, ref,
                                          tx_where))
            if len(details) > 1 and None not in amounts:
                total = sum((a[0] for a in amounts), Decimal(0))
                if total != entry_amount[0]:
                    raise StatementError(filename, where, f"transactions add up to {total}, the entry says "
                                                          f"{entry_amount[0]}")
    return found


def _amount(element, filename: str, where: str) -> tuple[Decimal, str]:
    node = _child(element, "Amt")
    if node is None or not (node.text or "").strip():
        raise StatementError(filename, f"{where}/Amt", "amount is missing")
    try:
        value = Decimal(node.text.strip())
    except InvalidOperation as exc:
        raise StatementError(filename, f"{where}/Amt", f"not an amount: {node.text!r}") from exc
    if value <= 0:
        raise StatementError(filename, f"{where}/Amt", f"must be positive, got {value}")
    return value, node.get("Ccy", "UAH")


def _transaction(entry, tx, booked, amount, reference, where) -> StatementTransaction:
    value, currency = amount
    parties = _child(tx, "RltdPties") if tx is not None else None
    payer = (_text(parties, "UltmtDbtr", "Nm") or _text(parties, "UltmtDbtr", "Pty", "Nm")
             or _text(parties, "Dbtr", "Nm") or _text(parties, "Dbtr", "Pty", "Nm"))
    iban = _text(parties, "DbtrAcct", "Id", "IBAN")
    info = _child(tx, "RmtInf") if tx is not None else _child(entry, "NtryDtls", "TxDtls", "RmtInf")
    purpose = " ".join(u.text.strip() for u in _children(info, "Ustrd") if u.text)
    structured = _text(info, "Strd", "CdtrRefInf", "Ref")
    if structured:
        purpose = f"{purpose} {structured}".strip()
    purpose = purpose or _text(entry, "AddtlNtryInf")
    end_to_end = _text(tx, "Refs", "EndToEndId") if tx is not None else ""
    if not reference and end_to_end and end_to_end != "NOTPROVIDED":
        reference = end_to_end
    return StatementTransaction(booked, value, currency, payer, iban.replace(" ", ""), purpose, reference, where)
