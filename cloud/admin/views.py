"""Organisation admin pages: gateways (status, gaps, refusals) and the audit log (view and CSV export)."""

from __future__ import annotations

import csv
import io
import json

from flask import Blueprint, Response, render_template
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import current_user, requires
from cloud.ingest.chain import missing_ranges
from cloud.models import AuditLog, Event, Gateway, Site
from cloud.permissions import Action

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/gateways")
@requires(Action.ADMINISTER)
def gateways():
    org_id = current_user().org_id
    session = db.session()
    rows = session.execute(
        select(Gateway, Site.code).join(Site, Site.id == Gateway.site_id).where(Gateway.org_id == org_id)
        .order_by(Gateway.code)
    ).all()
    refusals = session.scalars(
        select(Event).where(Event.org_id == org_id, Event.kind.like("security:%")).order_by(Event.ts.desc()).limit(50)
    ).all()
    return render_template("admin_gateways.html",
                           gateways=[(g, site, missing_ranges(session, g)) for g, site in rows],
                           refusals=refusals)


def _audit_rows(limit: int | None = None):
    query = select(AuditLog).where(AuditLog.org_id == current_user().org_id).order_by(AuditLog.id.desc())
    if limit:
        query = query.limit(limit)
    return db.session().scalars(query).all()


@bp.get("/audit")
@requires(Action.ADMINISTER)
def audit():
    return render_template("admin_audit.html", entries=_audit_rows(500))


@bp.get("/audit.csv")
@requires(Action.ADMINISTER)
def audit_csv():
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "at_utc", "actor", "action", "entity", "before", "after"])
    for entry in reversed(_audit_rows()):
        writer.writerow([entry.id, entry.at.isoformat(timespec="seconds"), entry.actor, entry.action, entry.entity,
                         json.dumps(entry.before, ensure_ascii=False) if entry.before is not None else "",
                         json.dumps(entry.after, ensure_ascii=False) if entry.after is not None else ""])
    return Response("\ufeff" + buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=audit.csv"})
