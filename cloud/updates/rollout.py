"""Staged rollout (docs/updates.md): which version each gateway should run, told in its heartbeat's answer, and what
became of it as the gateway reports back (applied, rolled back, refused), per gateway.

A gateway's cohort is a number 0…99 from a hash of its code: the same gateways go first at 5 % and stay in at
20 %, so widening a rollout never moves a gateway out of it. A version a gateway rolled back is not offered to it
again unless the operator re-offers it (``reoffer``); a version withdrawn in the signed targets is offered to
nobody.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.models import Gateway, GatewayHealth, GatewayUpdate, Site, SoftwareRelease, SoftwareRollout, utcnow
from cloud.updates.repository import ReleaseError, channel_for, expiry, withdrawn_versions
from shared.calendar import iso_utc, parse_iso

OUTCOMES = ("applied", "rolled_back", "refused")
REOFFERED = "reoffered"  # a rolled_back the operator cleared: offered again, with "again": true
REPORT_TEXT = 500  # characters of a gateway's reason kept
MAX_GATEWAYS = 1000  # gateways one rollout may name …
MAX_GATEWAY_CODE = 60  # … each code at most this long


def cohort(code: str) -> int:
    """The gateway's place 0…99 in every rollout: stable, spread evenly, needs nothing stored."""
    return int.from_bytes(hashlib.sha256(code.encode()).digest()[:8], "big") % 100


def withdrawn() -> frozenset[str]:
    """The versions the app's channel withdraws in its signed targets (none outside an app)."""
    if not has_app_context():
        return frozenset()
    return withdrawn_versions(channel_for(current_app.config, current_app.instance_path))


def _expiry() -> list[dict[str, Any]]:
    if not has_app_context():
        return []
    return expiry(channel_for(current_app.config, current_app.instance_path))


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
    if version in withdrawn():
        raise ReleaseError(f"{version} is withdrawn in the signed targets: gateways never install it; roll out "
                           "another version", "version", code="err_release_withdrawn", version=version)
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


def held_back(db: Session, rollout: SoftwareRollout) -> list[str]:
    """The rollout's gateways that run a newer version than it offers, not withdrawn: a gateway never moves back
    to an older version unless the one it runs is withdrawn in the signed targets, so these stay where they are."""
    gone, offered = withdrawn(), version_order(rollout.version)
    held = []
    for gateway in db.scalars(select(Gateway).order_by(Gateway.code)):
        health = db.get(GatewayHealth, gateway.id)
        running = ((health.document or {}).get("health") or {}).get("software_version") if health else None
        order = version_order(running) if isinstance(running, str) else None
        if order and offered and order > offered and running not in gone and chosen(rollout, gateway.code):
            held.append(gateway.code)
    return held


def version_order(version: str) -> tuple | None:
    """A release version as something to compare (PEP 440's order for the forms a release takes: 0.2.0 < 0.2.1,
    0.3.0rc1 < 0.3.0 < 0.3.0.post1); None for text that is no release version."""
    found = re.fullmatch(r"([0-9]+(?:\.[0-9]+){0,3})(?:([a-z]+)([0-9]*))?(?:\.post([0-9]+))?(?:\.dev([0-9]+))?",
                         version)
    if found is None:
        return None
    numbers = tuple(int(part) for part in found[1].split("."))
    release = numbers + (0,) * (4 - len(numbers))
    pre = (0, found[2], int(found[3] or 0)) if found[2] else (1, "", 0)
    dev = (0, int(found[5])) if found[5] else (1, 0)
    return release, pre, int(found[4]) if found[4] else -1, dev


def current_rollout(db: Session) -> SoftwareRollout | None:
    return db.scalar(select(SoftwareRollout).order_by(SoftwareRollout.id.desc()).limit(1))


def chosen(rollout: SoftwareRollout | None, code: str) -> bool:
    if rollout is None:
        return False
    return code in (rollout.gateways or []) or cohort(code) < rollout.percent


def offer_for(db: Session, gateway: Gateway, running: str | None) -> dict[str, Any] | None:
    """The version the gateway should install, for its heartbeat's answer; None when it runs it already, is not
    in the rollout, rolled that version back, or the version is withdrawn. ``again: true`` when the operator
    re-offered a version the gateway rolled back: the gateway forgets its own refusal of it."""
    rollout = current_rollout(db)
    if not chosen(rollout, gateway.code) or running == rollout.version or rollout.version in withdrawn():
        return None
    outcome = db.scalar(select(GatewayUpdate).where(GatewayUpdate.gateway_id == gateway.id,
                                                    GatewayUpdate.version == rollout.version))
    if outcome is not None and outcome.status == "rolled_back":
        return None
    release = db.scalar(select(SoftwareRelease).where(SoftwareRelease.version == rollout.version))
    offer = {"version": release.version, "target": release.target}
    if outcome is not None and outcome.status == REOFFERED:
        offer["again"] = True  # until the gateway reports an outcome of it that is new
    return offer


def _reported_at(last: dict[str, Any]) -> datetime | None:
    """The gateway's own time of an outcome (``last.at``), naive UTC like the columns; None when it has none."""
    try:
        return parse_iso(last["at"]).replace(tzinfo=None) if isinstance(last.get("at"), str) else None
    except ValueError:
        return None


def reoffer(db: Session, version: str, codes: list[str], actor: str) -> list[GatewayUpdate]:
    """Offer ``version`` again to the gateways ``codes`` that rolled it back (the cause fixed on site): their
    rolled_back record becomes ``reoffered`` and their next offer of it says ``again: true``.

    A gateway keeps reporting its last outcome in every heartbeat until it has a new one, so the rollback being
    cleared would come back at the next heartbeat and block the version again. The reoffered row therefore
    keeps, as its ``reported_at``, the gateway's own time of that rollback (``last.at``): a report with that very
    time is the old one; any other outcome of the version is new and replaces it."""
    if version in withdrawn():
        raise ReleaseError(f"{version} is withdrawn in the signed targets: it is offered to nobody", "version",
                           code="err_release_withdrawn", version=version)
    if not codes:
        raise ReleaseError("name the gateways to offer it again (--gateways CODE[,CODE])", "gateways",
                           code="err_reoffer_nothing", version=version)
    gateways = {g.code: g for g in db.scalars(select(Gateway).where(Gateway.code.in_(codes)))}
    unknown = [code for code in codes if code not in gateways]
    if unknown:
        raise ReleaseError(f"no such gateway: {', '.join(unknown)}", "gateways", code="err_release_gateways",
                           gateways=", ".join(unknown))
    rows = []
    for code in dict.fromkeys(codes):
        gateway = gateways[code]
        row = db.scalar(select(GatewayUpdate).where(GatewayUpdate.gateway_id == gateway.id,
                                                    GatewayUpdate.version == version))
        if row is None or row.status != "rolled_back":
            raise ReleaseError(f"{code} has not rolled {version} back" + (f" (its outcome: {row.status})" if row
                               else "") + ": there is nothing to re-offer", "gateways",
                               code="err_reoffer_not_rolled_back", gateway=code, version=version)
        health = db.get(GatewayHealth, gateway.id)
        update = (health.document or {}).get("update") if health is not None else None
        last = update.get("last") if isinstance(update, dict) else None
        reported = last if isinstance(last, dict) and (last.get("version"), last.get("status")) == (
            version, "rolled_back") else {}
        before = {"version": version, "status": row.status, "reason": row.reason}
        row.status, row.reported_at = REOFFERED, _reported_at(reported) or utcnow()
        audit(db, gateway.org_id, actor, "release.reoffer", f"gateway:{code}", before,
              {"version": version, "status": REOFFERED, "superseded_at": iso_utc(row.reported_at)})
        rows.append(row)
    db.flush()
    return rows


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
    if row is not None and row.status == REOFFERED and status == "rolled_back" \
            and _reported_at(last) == row.reported_at:
        return  # the rollback the operator re-offered past, still the gateway's last outcome (see reoffer)
    before = {"status": row.status, "reason": row.reason} if row is not None else None
    if row is None:
        row = GatewayUpdate(org_id=gateway.org_id, gateway_id=gateway.id, version=version)
        db.add(row)
    row.status, row.reason, row.slot, row.reported_at = status, reason, slot, utcnow()
    audit(db, gateway.org_id, f"gateway:{gateway.code}", "gateway.software_update", f"gateway:{gateway.code}",
          before, {"version": version, "status": status, "slot": slot, "reason": reason})


def rollout_json(row: SoftwareRollout, visible: set[str] | None = None,
                 withdrawn_now: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The rollout as JSON; ``visible``: only those of its named gateways are listed (an organisation sees its
    own, not another's codes); ``withdrawn_now``: the versions withdrawn (such a rollout offers nothing)."""
    named = row.gateways or []
    return {"version": row.version, "percent": row.percent, "withdrawn": row.version in withdrawn_now,
            "gateways": named if visible is None else [code for code in named if code in visible],
            "started_at": iso_utc(row.started_at), "started_by": row.started_by}


def fleet(db: Session, org_id: int | None = None) -> list[dict[str, Any]]:
    """Each gateway (of ``org_id``, or all): the version and slot it reported, what it should run, and the
    outcome of its last update."""
    rollout = current_rollout(db)
    offered = rollout is not None and rollout.version not in withdrawn()
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
            "target": rollout.version if offered and chosen(rollout, gateway.code) else None,
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
    gone = withdrawn()
    return {
        "releases": [{"version": r.version, "target": r.target, "sha256": r.sha256, "length": r.length,
                      "published_at": iso_utc(r.published_at), "published_by": r.published_by,
                      "withdrawn": r.version in gone} for r in releases],
        "rollout": rollout_json(rollout, visible, gone) if rollout is not None else None,
        "gateways": gateways,
        "expiry": _expiry(),  # the signed root and targets: each with soon=true when it is time to re-sign
    }
