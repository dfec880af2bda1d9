"""A billing run for 100 000 accounts on SQLite, against one raw SQL aggregate of the same readings.

Each account has a meter with its readings at the month's bounds (as an office import or residents'
submissions give them). The run drafts and issues: invoices numbered, ledger charged.
Prints a JSON object on its last line: accounts, seconds, limit_seconds, ratio (target: seconds under 10).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select, text

from cloud import create_app
from cloud.accounts.organisations import create_organisation, create_site, set_tariff
from cloud.billing.run import billing_run
from cloud.db import session_scope
from cloud.migrate import upgrade
from cloud.models import Account, Batch, Gateway, Line, Meter, Reading, Site
from shared.calendar import naive_period_bounds

OCTOBER = naive_period_bounds("2026-10")  # Kyiv's October, as the cloud stores instants


def populate(app, accounts: int) -> int:
    with session_scope(app) as db:
        org = create_organisation(db, "Тепло-Енерго Bench", "cooperative", "43210987", "UA853005280000026007012345678")
        site = create_site(db, org, "BENCH")
        set_tariff(db, org, "cooperative", Decimal("4.20"), Decimal("1.15"), date(2026, 1, 1))
        line = Line(org_id=org.id, site_id=site.id, number="1")
        db.add(line)
        db.flush()
        db.execute(insert(Account), [{"org_id": org.id, "site_id": site.id, "number": f"{i:06d}", "holder": f"Абонент {i}",
                                      "address": f"буд. {i}"} for i in range(accounts)])
        ids = dict(db.execute(select(Account.number, Account.id).where(Account.org_id == org.id)).all())
        db.execute(insert(Meter), [{"org_id": org.id, "site_id": site.id, "code": f"M{i:06d}", "role": "subscriber",
                                    "line_id": line.id, "account_id": ids[f"{i:06d}"]} for i in range(accounts)])
        gateway = Gateway(org_id=org.id, site_id=site.id, code="gw-bench", public_key="-")
        db.add(gateway)
        db.flush()
        batch = Batch(org_id=org.id, gateway_id=gateway.id, seq=1, hash="", prev="", body=b"", signature=b"")
        db.add(batch)
        db.flush()
        meters = dict(db.execute(select(Meter.code, Meter.id).where(Meter.site_id == site.id)).all())
        rows = []
        for i in range(accounts):
            start = 10_000 + i % 5_000
            used = 150 + (i * 37) % 600
            rows.append({"meter_id": meters[f"M{i:06d}"], "ts": OCTOBER[0], "batch_id": batch.id,
                         "values": {"import_kwh": f"{start}.000"}})
            rows.append({"meter_id": meters[f"M{i:06d}"], "ts": OCTOBER[1], "batch_id": batch.id,
                         "values": {"import_kwh": f"{start + used}.000"}})
        db.execute(insert(Reading), rows)
        return site.id


def raw_limit(app) -> float:
    engine = app.extensions["balans_engine"]
    started = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(text(
            "SELECT meter_id, max(json_extract(\"values\", '$.import_kwh')) - min(json_extract(\"values\", "
            "'$.import_kwh')) FROM readings WHERE ts IN ('2026-10-01 00:00:00.000000', '2026-11-01 00:00:00.000000') "
            "GROUP BY meter_id")).all()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 000 accounts (CI)")
    args = parser.parse_args()
    accounts = 5_000 if args.quick else 100_000
    folder = Path(tempfile.mkdtemp(prefix="balans-billing-"))
    url = f"sqlite:///{folder / 'cloud.sqlite3'}"
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    site_id = populate(app, accounts)
    limit = raw_limit(app)
    started = time.perf_counter()
    with session_scope(app) as db:
        result = billing_run(db, db.get(Site, site_id), "2026-10", issue=True, actor="bench")
    seconds = time.perf_counter() - started
    assert result.invoices == accounts and not result.problems, result.problems[:3]
    app.extensions["balans_engine"].dispose()
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"accounts": accounts, "seconds": round(seconds, 2), "limit_seconds": round(limit, 3),
                      "ratio": round(seconds / limit, 1), "target_seconds": 10,
                      "distributed_uah": result.summary["distributed_uah"]}))


if __name__ == "__main__":
    main()
