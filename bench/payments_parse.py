"""Parse and match a generated camt.053 statement of 100 000 transactions (the pure core, no database).

Purposes are written the ways people write them (о/р, ос.рах., leading zeros, misplaced spaces, Latin
look-alikes); some entries carry several transactions, some have no bank reference, some are debits or
pending. Prints a JSON object on its last line: transactions, seconds (and the split between the two steps).
Example: python bench/payments_parse.py --quick
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.payments import camt053
from cloud.payments.matching import AccountIndex
from cloud.payments.reconciliation import reconcile

FORMS = ("о/р {n}", "ос.рах. 0{n}", "особовий рахунок №{n}", "рахунок {n} Іваненко", "o/p {n}", "о/р {a} {b}",
         "за світло, {n}", "оплата за світло")


def purpose(i: int, accounts: int) -> str:
    number = str(1 + i % accounts)
    return FORMS[i % len(FORMS)].format(n=number, a=number[:2], b=number[2:])


def transaction(i: int, accounts: int, amount: str, with_amount: bool) -> str:
    amount_xml = f'<Amt Ccy="UAH">{amount}</Amt>' if with_amount else ""
    return (f"<TxDtls>{amount_xml}"
            "<Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>"
            f"<RltdPties><Dbtr><Pty><Nm>Платник {i}</Nm></Pty></Dbtr>"
            f"<DbtrAcct><Id><IBAN>UA{i % 99991:027d}</IBAN></Id></DbtrAcct></RltdPties>"
            f"<RmtInf><Ustrd>{purpose(i, accounts)}</Ustrd></RmtInf></TxDtls>")


def statement(transactions: int, accounts: int) -> bytes:
    """Mostly one transaction per entry; every 10th entry carries three; every 7th has no bank reference."""
    parts, i, n = [], 0, 0
    while i < transactions:
        several = n % 10 == 9 and transactions - i >= 3
        count = 3 if several else 1
        amounts = [f"{100 + (i + k) % 900}.{(i + k) % 100:02d}" for k in range(count)]
        total = sum(Decimal(a) for a in amounts)
        ref = "" if n % 7 == 6 else f"<AcctSvcrRef>R{n:09d}</AcctSvcrRef>"
        details = "".join(transaction(i + k, accounts, amounts[k], several) for k in range(count))
        parts.append(f'<Ntry><Amt Ccy="UAH">{total}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
                     f"<BookgDt><Dt>2026-11-{1 + n % 28:02d}</Dt></BookgDt><ValDt><Dt>2026-11-{1 + n % 28:02d}</Dt>"
                     f"</ValDt>{ref}<NtryDtls>{details}</NtryDtls></Ntry>")
        if n % 50 == 49:  # a bank fee and a pending credit now and then: skipped, not counted
            parts.append('<Ntry><Amt Ccy="UAH">15.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
                         "<BookgDt><Dt>2026-11-03</Dt></BookgDt></Ntry>"
                         '<Ntry><Amt Ccy="UAH">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>PDNG</Cd></Sts></Ntry>')
        i, n = i + count, n + 1
    return ('<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">'
            "<BkToCstmrStmt><GrpHdr><MsgId>BENCH</MsgId></GrpHdr><Stmt><Id>1</Id>"
            "<Acct><Id><IBAN>UA853005280000026007012345678</IBAN></Id></Acct>"
            + "".join(parts) + "</Stmt></BkToCstmrStmt></Document>").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 000 transactions (CI)")
    args = parser.parse_args()
    count = 5_000 if args.quick else 100_000
    accounts = max(count // 2, 10_000)
    register = AccountIndex(f"{n:06d}" for n in range(1, accounts + 1))
    data = statement(count, accounts)
    started = time.perf_counter()
    transactions = camt053.parse(data, "bench.xml")
    parsed = time.perf_counter()
    outcome = reconcile(transactions, register)
    finished = time.perf_counter()
    assert len(transactions) == count, (len(transactions), count)
    counts = outcome.counts()
    print(f"{len(data) / 1e6:.1f} MB statement, {count} transactions: parse {parsed - started:.2f} s, "
          f"match {finished - parsed:.2f} s; {counts['matched']} matched, {counts['unmatched']} unmatched",
          file=sys.stderr)
    print(json.dumps({"transactions": count, "seconds": round(finished - started, 3),
                      "parse_seconds": round(parsed - started, 3), "match_seconds": round(finished - parsed, 3),
                      "matched": counts["matched"], "unmatched": counts["unmatched"]}))


if __name__ == "__main__":
    main()
