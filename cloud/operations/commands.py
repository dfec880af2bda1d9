"""``balans cloud events | ack-event | gateway-health | voltage``: the operations pages from the shell — the
events and alarms (and acknowledging one), each gateway's health, a site's voltage quality over a Kyiv week."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_org, find_site, performs, site_org_option
from cloud.clock import kyiv_today, utcnow
from cloud.db import session_scope, write_lock
from cloud.models import Event, Gateway, Organisation, Site
from cloud.operations.events import EventFilter, OperationsError, acknowledge, find_event, list_events
from cloud.operations.health import gateway_health
from cloud.operations.voltage import (
    newest_voltage_day,
    parse_week,
    site_meters,
    store_voltage_days,
    voltage_report,
)
from cloud.permissions import Action


def _org_of(db, site: Site | None, org_ref: str) -> Organisation:
    """The organisation the listing is of: the site's, the one named, or the only one there is."""
    if site is not None:
        return db.get(Organisation, site.org_id)
    if org_ref:
        return find_org(db, org_ref)
    orgs = db.scalars(select(Organisation).order_by(Organisation.id).limit(2)).all()
    if len(orgs) != 1:
        raise click.ClickException("say whose events: --site CODE or --org ID")
    return orgs[0]


def _when(ts) -> str:
    return "" if ts is None else ts.strftime("%Y-%m-%d %H:%M")


@performs(Action.VIEW_SITES)
@click.command("events")
@click.option("--site", "site_code", default="", help="one site's code (default: the whole organisation)")
@site_org_option
@click.option("--open", "only_open", is_flag=True, help="only the events nobody has acknowledged")
@click.option("--kind", default="", help="theft | voltage | counter | tamper | gateway | security")
@click.option("--period", default="", help="a Kyiv month YYYY-MM (default: the newest events)")
@click.option("--json", "as_json", is_flag=True, help="the events as JSON")
@with_appcontext
def events_cmd(site_code, org_ref, only_open, kind, period, as_json):
    """The events and alarms: what the gateways sent, the security refusals, and the flags computed now (a line's
    loss, a gateway silent, backlogged or with its clock off; those have no id).
    Example: balans cloud events --site TP-118 --open"""
    try:
        wanted = EventFilter.parse({"kind": kind, "period": period, "state": "open" if only_open else "all"})
    except OperationsError as exc:
        raise click.ClickException(f"--{exc.field}: {exc}") from None
    with session_scope(_app()) as db:
        site = find_site(db, site_code, org_ref) if site_code else None
        org = _org_of(db, site, org_ref)
        rows = list_events(db, org.id, site, wanted, utcnow(), security=True)
        if as_json:
            click.echo(json.dumps({"events": [row.as_json() for row in rows]}, ensure_ascii=False))
            return
        if not rows:
            click.echo("no events")
        for row in rows:
            where = " ".join(part for part in (row.site, row.gateway, row.meter,
                                               f"line {row.line}" if row.line else "") if part)
            state = "open" if row.is_open else f"acknowledged by {row.acknowledged_by}"
            count = f" ×{row.count}" if row.count > 1 else ""
            click.echo(f"{row.id or '—':>6}  {_when(row.ts):16}  {row.kind}{count}  {where}  [{state}]"
                       + (f"  «{row.note}»" if row.note else ""))


@performs(Action.ADMINISTER)
@click.command("ack-event")
@click.argument("event_id", type=int)
@click.option("--note", default="", help="what was found or done (at most 500 characters)")
@click.option("--json", "as_json", is_flag=True, help="the event as JSON")
@with_appcontext
def ack_event_cmd(event_id, note, as_json):
    """Acknowledge a stored event with a note (audited; once only). Example:
    balans cloud ack-event 42 --note "fuse replaced on line 2"."""
    try:
        with write_lock(), session_scope(_app()) as db:
            found = find_event(db, _event_org(db, event_id), event_id)
            event = acknowledge(db, found.org_id, event_id, "cli", note, utcnow())
            result = {"id": event.id, "kind": event.kind,
                      "acknowledged_at": event.acknowledged_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "acknowledged_by": event.acknowledged_by, "note": event.note}
    except OperationsError as exc:
        raise click.ClickException(f"{exc.field}: {exc}") from None
    click.echo(json.dumps(result, ensure_ascii=False) if as_json else f"event {event_id} acknowledged")


def _event_org(db, event_id: int) -> int:
    """The organisation the event belongs to (0 when there is no such event: ``find_event`` then refuses it)."""
    return db.scalar(select(Event.org_id).where(Event.id == event_id)) or 0


@performs(Action.VIEW_SITES)
@click.command("gateway-health")
@click.option("--site", "site_code", default="", help="one site's code (default: every gateway)")
@site_org_option
@click.option("--json", "as_json", is_flag=True, help="the health of each gateway as JSON")
@with_appcontext
def gateway_health_cmd(site_code, org_ref, as_json):
    """Each gateway's health: last seen, lag of its newest batch, the backlog, gaps in its chain, its clock
    offset, the meters answering. Example: balans cloud gateway-health --site TP-118 --json"""
    now = utcnow()
    with session_scope(_app()) as db:
        query = select(Gateway, Site.code).join(Site, Site.id == Gateway.site_id).order_by(Site.code, Gateway.code)
        if site_code:
            site = find_site(db, site_code, org_ref)
            query = query.where(Gateway.site_id == site.id)
        elif org_ref:
            query = query.where(Gateway.org_id == find_org(db, org_ref).id)
        healths = [gateway_health(db, gateway, code, now, link=as_json)
                   for gateway, code in db.execute(query).all()]
        if as_json:
            click.echo(json.dumps({"gateways": [h.as_json() for h in healths]}, ensure_ascii=False))
            return
        if not healths:
            click.echo("no gateways")
        for h in healths:
            facts = h.as_json()
            offset = "—" if facts["clock_offset_s"] is None else f"{facts['clock_offset_s']:+d} s"
            lag = "—" if facts["last_lag_s"] is None else f"{facts['last_lag_s']} s"
            click.echo(f"{h.gateway.code} ({h.site_code}, {h.gateway.status}): last seen {facts['last_seen'] or '—'}, "
                       f"lag {lag}, backlog {h.late} late, gaps {len(h.gaps)}, clock {offset}, meters "
                       f"{len(h.meters_answering)}/{h.meters_total} answering"
                       + (f"; {', '.join(h.problems)}" if h.problems else "; ok"))


@performs(Action.VIEW_SITES)
@click.command("voltage")
@click.option("--site", "site_code", required=True, help="the site's code")
@site_org_option
@click.option("--week", default="", help="any Kyiv day YYYY-MM-DD of the week (default: the newest voltage data)")
@click.option("--json", "as_json", is_flag=True, help="the points and events as JSON")
@with_appcontext
def voltage_cmd(site_code, org_ref, week, as_json):
    """Voltage quality of a site's points over a Kyiv week (EN 50160: 95 % of 10-minute means within Un ± 10 %,
    all within +10 % / −15 %), worst first, and the gateway's voltage events.
    Example: balans cloud voltage --site TP-118 --week 2026-10-19"""
    with write_lock(), session_scope(_app()) as db:
        site = find_site(db, site_code, org_ref)
        meters = site_meters(db, site)
        try:
            chosen = parse_week(week.strip(), newest_voltage_day(db, [m[0] for m in meters]) or kyiv_today())
        except ValueError as exc:
            raise click.ClickException(f"--{exc}") from None
        store_voltage_days(db, site.org_id, [m[0] for m in meters], chosen)
        report = voltage_report(db, meters, chosen)
        if as_json:
            click.echo(json.dumps(report.as_json(), ensure_ascii=False))
            return
        click.echo(f"{site.code}: week of {chosen.monday:%Y-%m-%d}, {chosen.windows} ten-minute windows")
        if not report.points:
            click.echo("no voltage data")
        for p in report.points:
            c = p.compliance
            verdict = "compliant" if c.compliant else "NOT compliant"
            low = "—" if c.minimum is None else f"{c.minimum:.1f}"
            high = "—" if c.maximum is None else f"{c.maximum:.1f}"
            click.echo(f"{p.meter} {p.phase.upper()}: {verdict}, {c.within_band_pct:.1f} % within band, "
                       f"{c.means}/{c.expected} means, {low}–{high} V, {p.episodes} episodes")


COMMANDS = [events_cmd, ack_event_cmd, gateway_health_cmd, voltage_cmd]
