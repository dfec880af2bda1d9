"""Staged rollout (docs/updates.md): which version each gateway should run, told in its heartbeat's answer, and what
became of it as the gateway reports back (applied, rolled back, refused), per gateway.

A gateway's cohort is a number 0…99 from a hash of its code: the same gateways go first at 5 % and stay in at
20 %, so widening a rollout never moves a gateway out of it. A version a gateway rolled back is not offered to it
again; the operator rolls out a newer one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.models import Gateway, GatewayHealth, GatewayUpdate, Site, SoftwareRelease, SoftwareRollout, utcnow
from cloud.updates.repository import ReleaseError
from shared.calendar import iso_utc

OUTCOMES = ("applied", "rolled_back", "refused")
REPORT_TEXT = 500  # characters of a gateway's reason kept
MAX_GATEWAYS = 1000  # gateways one rollout may name …
MAX_GATEWAY_CODE = 60  # … each code at most this long


def cohort(code: str) -> int:
    """The gateway's place 0…99 in every rollout: stable, spread evenly, needs nothing stored."""
    return int.from_bytes(hashlib.sha256(code.encode()).digest()[:8], "big") % 100


def record_release(db: Session, version: str, target: str, sha256: str, length: int, actor: str) -> SoftwareRelease:
    row = SoftwareRelease(version=version, target=target, sha256=sha256, length=length, published_by=actor)
    db.add(row)
    db.flush()
    audit(db, None, actor, "release.publish", f"release:{version}", None,
          {"version": version, "target": target, "sha256": sha256, "length": length})
    return row


def start_rollout(db: Session, version: str, percent: int, gateways: list[str], actor: str) -> SoftwareRollout:
    """Offer ``version`` to ``percent`` % of the gateways and to those named (``percent=0`` and no names stops
    offering anything new; a gateway keeps what it runs)."""
    if db.scalar(select(SoftwareRelease).where(SoftwareRelease.version == version)) is None:
        raise ReleaseError(f"version {version!r} is not published (balans cloud release publish …)", "version",
                           code="err_release_version", version=version)
    if not 0 <= percent <= 100:
        raise ReleaseError("must be 0 … 100", "percent", code="err_release_percent", percent=percent)
    if len(gateways) > MAX_GATEWAYS or any(len(code) > MAX_GATEWAY_CODE for code in gateways):
        raise ReleaseError(f"at most {MAX_GATEWAYS} gateways, each code at most {MAX_GATEWAY_CODE} characters "
                           f"(given {len(gateways)}); widen the rollout with the percent instead", "gateways",
                           code="err_release_gateway_list", most=MAX_GATEWAYS, length=MAX_GATEWAY_CODE)
    known = set(db.scalars(select(Gateway.code).where(Gateway.code.in_(gateways))))
    unknown = [code for code in gateways if code not in known]
    if unknown:
        raise ReleaseError(f"no such gateway: {', '.join(unknown)}", "gateways", code="err_release_gateways",
                           gateways=", ".join(unknown))
    before = current_rollout(db)
    row = SoftwareRollout(version=version, percent=percent, gateways=sorted(set(gateways)), started_by=actor)
    db.add(row)
    db.flush()
    audit(db, None, actor, "release.rollout", f"release:{version}",
          rollout_json(before) if before is not None else None, rollout_json(row))
    return row


def current_rollout(db: Session) -> SoftwareRollout | None:
    return db.scalar(select(SoftwareRollout).order_by(SoftwareRollout.id.desc()).limit(1))


def chosen(rollout: SoftwareRollout | None, code: str) -> bool:
    if rollout is None:
        return False
    return code in (rollout.gateways or []) or cohort(code) < rollout.percent


def offer_for(db: Session, gateway: Gateway, running: str | None) -> dict[str, Any] | None:
    """The version the gateway should install, for its heartbeat's answer; None when it runs it already, is not
    in the rollout, or rolled that version back."""
    rollout = current_rollout(db)
    if not chosen(rollout, gateway.code) or running == rollout.version:
        return None
    failed = db.scalar(select(GatewayUpdate).where(GatewayUpdate.gateway_id == gateway.id,
                                                   GatewayUpdate.version == rollout.version,
                                                   GatewayUpdate.status == "rolled_back"))
    if failed is not None:
        return None
    release = db.scalar(select(SoftwareRelease).where(SoftwareRelease.version == rollout.version))
    return {"version": release.version, "target": release.target}


def record_report(db: Session, gateway: Gateway, report: Any) -> None:
    """The ``update`` part of a heartbeat: the outcome of the gateway's last update, stored once per version and
    audited when it changes. A malformed report is ignored: it must not cost the heartbeat."""
    if not isinstance(report, dict) or not isinstance(report.get("last"), dict):
        return
    last = report["last"]
    version, status = last.get("version"), last.get("status")
    if not isinstance(version, str) or not version or len(version) > 40 or status not in OUTCOMES:
        return
    slot = last.get("slot") if last.get("slot") in ("a", "b") else ""
    reason = str(last.get("reason") or "")[:REPORT_TEXT]
    row = db.scalar(select(GatewayUpdate).where(GatewayUpdate.gateway_id == gateway.id,
                                                GatewayUpdate.version == version))
    if row is not None and (row.status, row.reason, row.slot) == (status, reason, slot):
        return
    before = {"status": row.status, "reason": row.reason} if row is not None else None
    if row is None:
        row = GatewayUpdate(org_id=gateway.org_id, gateway_id=gateway.id, version=version)
        db.add(row)
    row.status, row.reason, row.slot, row.reported_at = status, reason, slot, utcnow()
    audit(db, gateway.org_id, f"gateway:{gateway.code}", "gateway.software_update", f"gateway:{gateway.code}",
          before, {"version": version, "status": status, "slot": slot, "reason": reason})


def rollout_json(row: SoftwareRollout, visible: set[str] | None = None) -> dict[str, Any]:
    """The rollout as JSON; ``visible``: only those of its named gateways are listed (an organisation sees its
    own, not another's codes)."""
    named = row.gateways or []
    return {"version": row.version, "percent": row.percent,
            "gateways": named if visible is None else [code for code in named if code in visible],
            "started_at": iso_utc(row.started_at), "started_by": row.started_by}


def fleet(db: Session, org_id: int | None = None) -> list[dict[str, Any]]:
    """Each gateway (of ``org_id``, or all): the version and slot it reported, what it should run, and the
    outcome of its last update."""
    rollout = current_rollout(db)
    query = select(Gateway, Site.code).join(Site, Site.id == Gateway.site_id).order_by(Gateway.code)
    if org_id is not None:
        query = query.where(Gateway.org_id == org_id)
    rows = []
    for gateway, site in db.execute(query).all():
        health = db.get(GatewayHealth, gateway.id)
        document = health.document if health is not None else {}
        update = document.get("update") if isinstance(document.get("update"), dict) else {}
        last = db.scalar(select(GatewayUpdate).where(GatewayUpdate.gateway_id == gateway.id)
                         .order_by(GatewayUpdate.reported_at.desc(), GatewayUpdate.id.desc()).limit(1))
        running = (document.get("health") or {}).get("software_version")
        rows.append({
            "gateway": gateway.code, "site": site, "status": gateway.status, "cohort": cohort(gateway.code),
            "running": running, "slot": update.get("slot"),
            "note": str(update["note"])[:REPORT_TEXT] if update.get("note") else None,
            "seen_at": iso_utc(health.received_at) if health is not None else None,
            "target": rollout.version if chosen(rollout, gateway.code) else None,
            "last": {"version": last.version, "status": last.status, "slot": last.slot, "reason": last.reason,
                     "at": iso_utc(last.reported_at)} if last is not None else None,
        })
    return rows


def status(db: Session, org_id: int | None = None) -> dict[str, Any]:
    """Releases, the rollout in force and the fleet (of ``org_id``, or all), for the page, the JSON API and
    ``release status``."""
    releases = db.scalars(select(SoftwareRelease).order_by(SoftwareRelease.id.desc())).all()
    rollout = current_rollout(db)
    gateways = fleet(db, org_id)
    visible = None if org_id is None else {row["gateway"] for row in gateways}
    return {
        "releases": [{"version": r.version, "target": r.target, "sha256": r.sha256, "length": r.length,
                      "published_at": iso_utc(r.published_at), "published_by": r.published_by} for r in releases],
        "rollout": rollout_json(rollout, visible) if rollout is not None else None,
        "gateways": gateways,
    }
