"""Import a register of 20 000 subscribers (an XLSX as an office keeps it, and the same as CSV) into an
organisation that already has half of them, on SQLite and, when it answers, PostgreSQL.

Each row has an account, holder, address, phone, e-mail, benefit and a meter on one of four lines; half the
accounts are new, the other half are in the register already without their meters (each gains its meter, every
fifth a benefit). Timed: reading the file, the preview (``plan``) and
the application (``apply`` + commit). Prints a JSON object on its last line: rows, seconds per step and the
ratio of each whole import to the limit (target < 10 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, insert, text

from cloud import create_app
from cloud.accounts.organisations import create_organisation, create_site
from cloud.db import session_scope
from cloud.migrate import upgrade
from cloud.models import Account, Line, Organisation
from cloud.register.export import to_csv, to_xlsx
from cloud.register.importer import apply, plan
from cloud.register.table import read_table

LIMIT = 10.0
POSTGRES = os.environ.get("BALANS_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def register(rows: int) -> list[list[str]]:
    table = []
    for i in range(rows):
        holder = f"Абонент {i} {'змінений' if i % 4 == 1 else ''}".strip()
        table.append([f"{i:06d}", "TP-1", holder, f"вул. Соснова, {i}", "household", "", "", "1", f"a{i}@coop.ua",
                      f"+38067{i:07d}", "", "50" if i % 10 == 0 else "0", "0", "0", "0", "ні", f"M{i:06d}",
                      str(1 + i % 4), ""])
    return table


def seeded(url: str, rows: int):
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    with session_scope(app) as db:
        org = create_organisation(db, "Bench", "cooperative")
        site = create_site(db, org, "TP-1")
        db.execute(insert(Line), [{"org_id": org.id, "site_id": site.id, "number": str(n)} for n in range(1, 5)])
        db.execute(insert(Account), [{"org_id": org.id, "site_id": site.id, "number": f"{i:06d}",
                                      "holder": f"Абонент {i}", "address": f"вул. Соснова, {i}",
                                      "email": f"a{i}@coop.ua", "phone": f"+38067{i:07d}"}
                                     for i in range(0, rows, 2)])
        org_id = org.id
    return app, org_id


def one(url: str, name: str, body: bytes, rows: int) -> dict:
    app, org_id = seeded(url, rows)
    started = time.perf_counter()
    table = read_table(name, body)
    read = time.perf_counter()
    with session_scope(app) as db:
        preview = plan(db, db.get(Organisation, org_id), table)
    planned = time.perf_counter()
    with session_scope(app) as db:
        done = apply(db, db.get(Organisation, org_id), table, "bench")
    applied = time.perf_counter()
    app.extensions["balans_engine"].dispose()
    total = applied - started
    return {"read_s": round(read - started, 2), "preview_s": round(planned - read, 2),
            "apply_s": round(applied - planned, 2), "total_s": round(total, 2), "ratio": round(total / LIMIT, 3),
            "counts": done.counts(), "preview_ok": preview.ok}


def postgres_url() -> str | None:
    try:
        engine = create_engine(POSTGRES)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception:  # no server here: the SQLite figures alone
        return None
    return POSTGRES


def fresh_postgres(url: str) -> str:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DROP DATABASE IF EXISTS balans_bench_register"))
        connection.execute(text("CREATE DATABASE balans_bench_register"))
    engine.dispose()
    return url.rsplit("/", 1)[0] + "/balans_bench_register"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 000 rows (CI)")
    args = parser.parse_args()
    rows = 2_000 if args.quick else 20_000
    table = register(rows)
    files = {"xlsx": ("register.xlsx", to_xlsx(table)), "csv": ("register.csv", to_csv(table))}
    figures: dict = {"rows": rows, "limit_s": LIMIT}
    for kind, (name, body) in files.items():
        folder = Path(tempfile.mkdtemp(prefix="balans-register-"))
        figures[f"sqlite_{kind}"] = one(f"sqlite:///{folder / 'cloud.sqlite3'}", name, body, rows)
        shutil.rmtree(folder, ignore_errors=True)
        print(kind, "sqlite", figures[f"sqlite_{kind}"], file=sys.stderr)
    server = postgres_url()
    if server is not None:
        figures["postgres_xlsx"] = one(fresh_postgres(server), *files["xlsx"], rows)
        print("xlsx postgres", figures["postgres_xlsx"], file=sys.stderr)
    figures["worst_ratio"] = max(v["ratio"] for v in figures.values() if isinstance(v, dict))
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
