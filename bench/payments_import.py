"""Import and reconcile a camt.053 statement of 100 000 transactions on SQLite.

Purposes are written the ways people write them (о/р, ос.рах., leading zeros, misplaced spaces); a few
have no account number. Prints a JSON object on its last line: transactions, matched, seconds (target < 15).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from cloud import create_app
from cloud.accounts.organisations import create_organisation
from cloud.db import session_scope
from cloud.migrate import upgrade
from cloud.models import Account, Organisation
from cloud.payments.importer import import_statement

FORMS = ("о/р {n}", "ос.рах. 0{n}", "особовий рахунок №{n}", "рахунок {n} {name}", "o/p {n}", "оплата за світло")


def statement(transactions: int, accounts: int) -> bytes:
    entries = []
    for i in range(transactions):
        number = f"{i % accounts:06d}"
        purpose = FORMS[i % len(FORMS)].format(n=number.lstrip("0") or "0", name="Іваненко")
        entries.append(
            f'<Ntry><Amt Ccy="UAH">{100 + i % 900}.{i % 100:02d}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
            f"<BookgDt><Dt>2026-11-{1 + i % 28:02d}</Dt></BookgDt><AcctSvcrRef>R{i:08d}</AcctSvcrRef><NtryDtls><TxDtls>"
            f"<RltdPties><Dbtr><Nm>Платник {i}</Nm></Dbtr><DbtrAcct><Id><IBAN>UA{i:027d}</IBAN></Id></DbtrAcct>"
            f"</RltdPties><RmtInf><Ustrd>{purpose}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>")
    return ('<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">'
            "<BkToCstmrStmt><Stmt>" + "".join(entries) + "</Stmt></BkToCstmrStmt></Document>").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 000 transactions (CI)")
    args = parser.parse_args()
    transactions = 5_000 if args.quick else 100_000
    accounts = transactions // 2
    folder = Path(tempfile.mkdtemp(prefix="balans-payments-"))
    url = f"sqlite:///{folder / 'cloud.sqlite3'}"
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    with session_scope(app) as db:
        org = create_organisation(db, "Bench", "cooperative")
        db.execute(insert(Account), [{"org_id": org.id, "number": f"{i:06d}"} for i in range(accounts)])
        org_id = org.id
    data = statement(transactions, accounts)
    started = time.perf_counter()
    with session_scope(app) as db:
        result = import_statement(db, db.get(Organisation, org_id), data, "bench.xml", "camt053", "bench")
    seconds = time.perf_counter() - started
    app.extensions["balans_engine"].dispose()
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"transactions": transactions, "matched": result.matched, "unmatched": result.unmatched,
                      "seconds": round(seconds, 2), "limit_seconds": 15, "ratio": round(seconds / 15, 2)}))


if __name__ == "__main__":
    main()
