"""Ingestion of 1 000-reading batches from several concurrent gateways, against the database's own limit.

For SQLite and (when reachable) PostgreSQL: the same rows through the HTTP API (the real app behind
waitress) and through the service function, each as a ratio to the limit — a raw ``executemany`` of the
same rows into the same readings table on SQLite, ``COPY`` on PostgreSQL, in one transaction.
Signature check, validation, dedupe and the chain check are included in ours; every figure is the best of
five rounds (one with ``--quick``): on this shared 2-core host one round of the same code varies by up to 2×.
Prints a JSON object on its last line (target: every ratio ≤ 3).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gzip
import http.client
import json
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from cloud import create_app
from cloud.accounts.organisations import create_organisation, create_site
from cloud.db import session_scope
from cloud.ingest.enrolment import enrol_gateway, issue_token
from cloud.ingest.group_writer import BatchWriter
from cloud.ingest.service import ingest_batch
from cloud.migrate import upgrade
from provisioning.demo import start_cloud
from provisioning.ports import free_port
from shared.batch import GENESIS_HASH, b64, public_key_pem, seal_batch
from shared.calendar import iso_utc

METERS = 100
ENERGY_COLUMNS = "meter_id, start, imp_wh, exp_wh, flag, batch_id"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def make_batches(gateways: int, per_gateway: int, offset: int, intervals: bool = False) -> list[list]:
    """Signed chains of batches, 1 000 readings each (100 meters × 10 instants); with ``intervals``, also each
    meter's 15-minute energy at those instants, as a gateway sends both."""
    start = datetime(2026, 10, 1, tzinfo=UTC) + timedelta(days=offset)
    chains = []
    for g in range(gateways):
        key = Ed25519PrivateKey.generate()
        prev, chain = GENESIS_HASH, []
        for seq in range(1, per_gateway + 1):
            readings = []
            for step in range(10):
                ts = iso_utc(start + timedelta(minutes=15 * (seq * 10 + step)))
                readings += [{"m": f"G{g}M{m:03d}", "t": ts,
                              "q": {"import_kwh": f"{1000 + seq * 10 + step + m / 1000:.3f}", "voltage_l1": "229.800"}}
                             for m in range(METERS)]
            # Up to 500 distinct quarter-hour figures in a batch, as 100 houses give; no solar export.
            energy = [{"m": r["m"], "t": r["t"], "imp": f"{0.05 + (n * 37 % 500) / 1000:.3f}", "exp": "0.000",
                       "f": "measured"} for n, r in enumerate(readings)] if intervals else []
            batch = seal_batch(key, gateway=f"gw-{offset}-{g}", seq=seq, prev=prev, created=readings[-1]["t"],
                               readings=readings, intervals=energy)
            prev = batch.hash
            chain.append(batch)
        chains.append((key, chain))
    return chains


def enrol_all(app, chains, offset: int) -> None:
    with session_scope(app) as db:
        org = create_organisation(db, f"Bench {offset}-{uuid.uuid4().hex[:6]}", "cooperative")
        for g, (key, _) in enumerate(chains):
            site = create_site(db, org, f"S{offset}-{g}-{uuid.uuid4().hex[:6]}")
            token = issue_token(db, site)
            enrol_gateway(db, token, f"gw-{offset}-{g}", public_key_pem(key.public_key()), {
                "lines": [{"number": "1"}],
                "meters": [{"id": f"G{g}M{m:03d}", "role": "subscriber", "line": "1"} for m in range(METERS)],
            })


def raw_limit(app, url: str, chains) -> float:
    """The same rows written the fastest plain way into the same table: executemany (SQLite) or COPY (PG)."""
    engine = app.extensions["balans_engine"]
    with engine.begin() as conn:
        meters = dict(conn.execute(text("SELECT code, id FROM meters")).all())
        batch_id = conn.execute(text(
            "INSERT INTO batches (org_id, gateway_id, seq, hash, prev, body, signature, received_at, rows) "
            "SELECT org_id, id, -1, '', '', :b, :b, CURRENT_TIMESTAMP, 0 FROM gateways LIMIT 1 RETURNING id"),
            {"b": b""}).scalar_one()
    documents = [b.document() for _, chain in chains for b in chain]
    rows = [(meters[r["m"]], r["t"].replace("T", " ").replace("Z", ".000000"), json.dumps(r["q"]), batch_id)
            for d in documents for r in d["readings"]]
    energy = [(meters[r["m"]], r["t"].replace("T", " ").replace("Z", ".000000"),
               int(Decimal(r["imp"]) * 1000), int(Decimal(r["exp"]) * 1000), r["f"], batch_id)
              for d in documents for r in d["intervals"]]
    started = time.perf_counter()
    if url.startswith("sqlite"):
        with engine.begin() as conn:
            conn.exec_driver_sql('INSERT INTO readings (meter_id, ts, "values", batch_id) VALUES (?, ?, ?, ?)', rows)
            if energy:
                conn.exec_driver_sql(f"INSERT INTO interval_energy ({ENERGY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                                     energy)
    else:
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                with cursor.copy('COPY readings (meter_id, ts, "values", batch_id) FROM STDIN') as copy:
                    for row in rows:
                        copy.write_row(row)
                if energy:
                    with cursor.copy(f"COPY interval_energy ({ENERGY_COLUMNS}) FROM STDIN") as copy:
                        for row in energy:
                            copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
    seconds = time.perf_counter() - started
    with engine.begin() as conn:  # the service run stores the same rows: make room
        conn.execute(text("DELETE FROM readings WHERE batch_id = :b"), {"b": batch_id})
        conn.execute(text("DELETE FROM interval_energy WHERE batch_id = :b"), {"b": batch_id})
        conn.execute(text("DELETE FROM batches WHERE id = :b"), {"b": batch_id})
    return seconds


def via_service(app, chains, **writer_options) -> float:
    """Each gateway's chain from its own thread, as the HTTP workers would call the service function."""
    engine = app.extensions["balans_engine"]
    writer = (BatchWriter(app.extensions["balans_sessions"], threading.Lock(), **writer_options)
              if engine.dialect.name == "sqlite" else None)

    def send(chain) -> None:
        for batch in chain:
            with session_scope(app) as db:
                assert ingest_batch(db, batch.gateway, batch.body, batch.signature, writer).status == "stored"

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(chains)) as pool:
        list(pool.map(send, [chain for _, chain in chains]))
    return time.perf_counter() - started


def via_http(port: int, chains) -> float:
    """Each gateway from its own thread over one kept-alive connection, its batches gzipped beforehand (as a
    gateway seals and compresses them before it sends): the time is the cloud's."""
    requests = [[(gzip.compress(batch.body, 5), {
        "Content-Type": "application/json", "Content-Encoding": "gzip",
        "X-Balans-Gateway": batch.gateway, "X-Balans-Signature": b64(batch.signature)}) for batch in chain]
        for _, chain in chains]

    def send(chain) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for body, headers in chain:
                connection.request("POST", "/api/v1/batches", body, headers)
                response = connection.getresponse()
                response.read()
                assert response.status == 201, response.status
        finally:
            connection.close()

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
        list(pool.map(send, requests))
    return time.perf_counter() - started


def measure(url: str, gateways: int, per_gateway: int, repeats: int, folder: Path, intervals: bool = False) -> dict:
    """Each figure is the best of ``repeats`` rounds (fresh gateways each round), as timeit does: the
    machine's noise only ever adds time."""
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "GATEWAY_RATE_PER_MINUTE": 10**6})
    port = free_port()
    server = start_cloud(url, port, folder)
    limit = service = http = float("inf")
    try:
        for round_ in range(repeats):
            service_chains = make_batches(gateways, per_gateway, 2 * round_, intervals)
            http_chains = make_batches(gateways, per_gateway, 2 * round_ + 1, intervals)
            enrol_all(app, service_chains, 2 * round_)
            enrol_all(app, http_chains, 2 * round_ + 1)
            limit = min(limit, raw_limit(app, url, service_chains))
            service = min(service, via_service(app, service_chains))
            http = min(http, via_http(port, http_chains))
    finally:
        server.terminate()
        server.wait(timeout=10)
    app.extensions["balans_engine"].dispose()
    readings = gateways * per_gateway * 10 * METERS
    return {"readings": readings, "rounds": repeats, "limit_seconds": round(limit, 3),
            "service_seconds": round(service, 3), "http_seconds": round(http, 3),
            "service_ratio": round(service / limit, 2), "http_ratio": round(http / limit, 2)}


VARIANTS = {"no_wal_thread": {"background_checkpoints": False}}


def measure_variants(url: str, gateways: int, per_gateway: int, repeats: int) -> dict:
    """The SQLite group writer without its checkpoint thread: what the thread earns, as service ratios to the
    same raw executemany. (A pool of parse workers ahead of the writer was measured the same way and removed:
    the writer stays within its limit without it.)"""
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "GATEWAY_RATE_PER_MINUTE": 10**6})
    best = {name: float("inf") for name in ("full", *VARIANTS)}
    limit = float("inf")
    offset = 1000
    for _ in range(repeats):
        for name, options in (("full", {}), *VARIANTS.items()):
            chains = make_batches(gateways, per_gateway, offset)
            enrol_all(app, chains, offset)
            offset += 1
            limit = min(limit, raw_limit(app, url, chains))
            best[name] = min(best[name], via_service(app, chains, **options))
    app.extensions["balans_engine"].dispose()
    return {f"service_ratio_{name}": round(seconds / limit, 2) for name, seconds in best.items()}


def pg_url() -> str | None:
    try:
        name = f"balans_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    except Exception:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="4 gateways × 2 batches (CI)")
    parser.add_argument("--intervals", action="store_true",
                        help="batches carry each meter's 15-minute energy too: the path that keeps the daily, "
                             "monthly and per-line sums in the same transaction (the limit writes both tables)")
    parser.add_argument("--variants", action="store_true",
                        help="also measure the SQLite writer without its checkpoint thread")
    args = parser.parse_args()
    gateways, per_gateway, repeats = (4, 2, 1) if args.quick else (4, 25, 5)
    folder = Path(tempfile.mkdtemp(prefix="balans-ingest-"))
    sqlite = measure(f"sqlite:///{folder / 'cloud.sqlite3'}", gateways, per_gateway, repeats, folder, args.intervals)
    figures = {"readings": sqlite["readings"], "intervals": args.intervals, "gateways": gateways,
               "batch_readings": 10 * METERS,
               "http_sqlite_ratio": sqlite["http_ratio"], "service_sqlite_ratio": sqlite["service_ratio"],
               "sqlite": sqlite}
    if args.variants:
        figures["sqlite_variants"] = measure_variants(f"sqlite:///{folder / 'variants.sqlite3'}", gateways,
                                                      per_gateway, repeats)
    url = pg_url()
    if url:
        pg = measure(url, gateways, per_gateway, repeats, folder, args.intervals)
        figures |= {"http_pg_ratio": pg["http_ratio"], "service_pg_ratio": pg["service_ratio"], "pg": pg}

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
