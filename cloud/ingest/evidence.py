"""Evidence: re-verify what gateways sent, and export it for an inspector.

The cloud keeps every batch exactly as received with its detached signature. ``verify_gateway``
re-checks signatures and the hash chain; ``export_evidence`` writes the raw batches of a line's
period, the gateway's public key and a README so anyone can check them with openssl and sha256sum.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.clock import utcnow
from cloud.ingest.chain import missing_ranges
from cloud.models import Batch, Gateway, GatewayKey, IntervalEnergy, Line, Meter, Site
from shared.batch import BatchError, batch_hash, load_public_key, verify_signature
from shared.calendar import iso_utc, kyiv_time, naive_period_bounds


@dataclass
class VerifyReport:
    gateway: str
    batches: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    # Runs of seq never received, as (first, last): a gateway that jumped 100 000 is one entry, not 100 000.
    gaps: list[tuple[int, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        return {"gateway": self.gateway, "batches": self.batches, "first_seq": self.first_seq,
                "last_seq": self.last_seq, "ok": self.ok, "problems": self.problems,
                "gaps": [list(gap) for gap in self.gaps]}


def seq_ranges(gaps: list[tuple[int, int]]) -> str:
    """Runs of seq as a person reads them: ``3–4, 6`` (as the gateways page shows them)."""
    return ", ".join(str(first) if first == last else f"{first}–{last}" for first, last in gaps)


def verify_gateway(db: Session, gateway: Gateway, since: datetime | None = None,
                   until: datetime | None = None) -> VerifyReport:
    """Check every stored batch's signature, stored hash and link to its predecessor."""
    report = VerifyReport(gateway.code)
    keys = {k.id: load_public_key(k.public_key) for k in db.scalars(
        select(GatewayKey).where(GatewayKey.gateway_id == gateway.id))}
    fallback = load_public_key(gateway.public_key)
    query = select(Batch.seq, Batch.hash, Batch.prev, Batch.body, Batch.signature, Batch.key_id).where(
        Batch.gateway_id == gateway.id).order_by(Batch.seq)
    if since is not None:
        query = query.where(Batch.received_at >= since)
    if until is not None:
        query = query.where(Batch.received_at < until)
    previous: tuple[int, str] | None = None
    for seq, stored_hash, prev, body, signature, key_id in db.execute(query).yield_per(500):
        key = keys.get(key_id, fallback)
        report.batches += 1
        report.first_seq = seq if report.first_seq is None else report.first_seq
        report.last_seq = seq
        try:
            verify_signature(key, body, signature)
        except BatchError:
            report.problems.append(f"batch {seq}: signature does not verify")
        actual = batch_hash(body)
        if actual != stored_hash:
            report.problems.append(f"batch {seq}: stored hash {stored_hash[:12]}… ≠ hash of its bytes {actual[:12]}…")
        if json.loads(body).get("prev") != prev:
            report.problems.append(f"batch {seq}: prev column differs from the signed bytes")
        if previous is not None:
            if previous[0] == seq - 1 and prev != previous[1]:
                report.problems.append(f"batch {seq}: does not chain to batch {seq - 1}")
            elif previous[0] < seq - 1:
                report.gaps.append((previous[0] + 1, seq - 1))
        elif seq == 1 and prev != "0" * 64 and since is None:
            report.problems.append("batch 1: does not start the chain")
        previous = (seq, actual)
    return report


EVIDENCE_README = """Evidence for line {line} of site {site}, period {period}
=================================================================

Exported by Balans on {exported}.
The period is Kyiv's month: from {period_start} to {period_end} (UTC, as every "t" in the batches).

What is here
------------
- gateway-<id>-key<k>.pem   the gateway's public Ed25519 key(s); manifest.json says which key each batch uses
- batches/<gateway>/<seq>.json  each batch exactly as the gateway signed it (canonical JSON)
- batches/<gateway>/<seq>.sig   its detached Ed25519 signature (64 raw bytes)
- manifest.json             every file with its SHA-256, and which batches carry this line's meters
                            ({meters})

How to check, with standard tools
---------------------------------
1. Each signature (OpenSSL 3):
     openssl pkeyutl -verify -pubin -inkey gateway-<id>-key<k>.pem -rawin \\
         -in batches/<id>/<seq>.json -sigfile batches/<id>/<seq>.sig
   prints "Signature Verified Successfully".
2. The chain: the "prev" field inside batch N equals the SHA-256 of batch N-1:
     sha256sum batches/<id>/<N-1>.json
     grep -o '"prev":"[0-9a-f]*"' batches/<id>/<N>.json
3. The readings: open a batch; "intervals" lists {{"m": meter, "t": start, "imp": kWh, ...}}.
   Summing "imp" of the line's meters whose "t" lies in [period_start, period_end) (manifest.json) gives the
   figures of the balance.

The batches cover {first} … {last}; batches not listed here did not carry this line's data
for the period (or were never received: "gaps" in manifest.json lists, per gateway, the runs of seq
[first, last] never received between its first and last batch here).
"""


def find_line(db: Session, line_number: str, site_id: int | None = None, org_id: int | None = None
              ) -> tuple[Site, Line]:
    """The line ``line_number`` (at the site ``site_id`` or of the organisation ``org_id`` when given); more
    than one such line is refused with the sites (and their organisations) named, never guessed."""
    query = select(Site, Line).join(Line, Line.site_id == Site.id).where(Line.number == line_number)
    if site_id is not None:
        query = query.where(Site.id == site_id)
    if org_id is not None:
        query = query.where(Site.org_id == org_id)
    found = db.execute(query.order_by(Site.org_id, Site.code)).all()
    if not found:
        raise ValueError(f"line {line_number!r} not found" + (" at that site" if site_id is not None else ""))
    if len(found) > 1:
        where = ", ".join(f"{site.code} (org {site.org_id})" for site, _ in found)
        raise ValueError(f"line {line_number!r} exists at sites {where}; give --site (and --org)")
    return found[0][0], found[0][1]


def export_gaps(db: Session, gateway: Gateway, batches: list[Batch]) -> list[tuple[int, int]]:
    """The seq never received between the gateway's first and last exported batch (each such batch could have
    carried the line's data). There are fewer runs than batches received in between: no limit needed."""
    seqs = [b.seq for b in batches if b.gateway_id == gateway.id]
    low, high = min(seqs), max(seqs)
    return missing_ranges(db, gateway, limit=high - low + 1, between=(low, high))


def export_evidence(db: Session, site: Site, line: Line, period: str, out: Path) -> dict:
    """Write the raw batches that carry the line's interval energy for ``period`` into ``out``."""
    site_code, line_number = site.code, line.number
    start, end = naive_period_bounds(period)
    meters = db.scalars(select(Meter.id).where(Meter.line_id == line.id)).all()
    codes = db.scalars(select(Meter.code).where(Meter.line_id == line.id).order_by(Meter.code)).all()
    batch_ids = db.scalars(
        select(IntervalEnergy.batch_id).where(IntervalEnergy.meter_id.in_(meters), IntervalEnergy.start >= start,
                                              IntervalEnergy.start < end).distinct()
    ).all()
    batches = db.scalars(select(Batch).where(Batch.id.in_(batch_ids)).order_by(Batch.gateway_id, Batch.seq)).all()
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    gateways: dict[int, Gateway] = {}
    for batch in batches:
        gateway = gateways.get(batch.gateway_id) or db.get(Gateway, batch.gateway_id)
        gateways[batch.gateway_id] = gateway
        folder = out / "batches" / gateway.code
        folder.mkdir(parents=True, exist_ok=True)
        for suffix, data in ((".json", batch.body), (".sig", batch.signature)):
            path = folder / f"{batch.seq:08d}{suffix}"
            path.write_bytes(data)
            files[str(path.relative_to(out))] = hashlib.sha256(data).hexdigest()
    used_keys = {b.key_id for b in batches}
    for gateway in gateways.values():
        for key in db.scalars(select(GatewayKey).where(GatewayKey.gateway_id == gateway.id).order_by(GatewayKey.id)):
            if key.id not in used_keys:
                continue
            # One file per key the batches were verified with (a rotation leaves several).
            path = out / f"gateway-{gateway.code}-key{key.id}.pem"
            path.write_text(key.public_key, encoding="ascii")
            files[path.name] = hashlib.sha256(key.public_key.encode()).hexdigest()
    manifest = {
        "site": site_code, "line": line_number, "period": period, "meters": list(codes),
        "period_start": iso_utc(start), "period_end": iso_utc(end),
        "batches": [{"gateway": gateways[b.gateway_id].code, "seq": b.seq, "hash": b.hash,
                     "key": f"gateway-{gateways[b.gateway_id].code}-key{b.key_id}.pem"} for b in batches],
        "files": files,
        "gaps": {gateway.code: [list(gap) for gap in export_gaps(db, gateway, batches)]
                 for gateway in gateways.values()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    (out / "README.txt").write_text(EVIDENCE_README.format(
        line=line_number, site=site_code, period=period, period_start=iso_utc(start), period_end=iso_utc(end),
        exported=kyiv_time(utcnow()).strftime("%Y-%m-%d %H:%M (Kyiv)"),
        meters=", ".join(codes), first=batches[0].seq if batches else "—", last=batches[-1].seq if batches else "—",
    ), encoding="utf-8")
    return manifest
