"""``balans cloud report KIND``: the accounting reports as on the pages, to JSON, CSV or XLSX."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_org, performs
from cloud.db import session_scope
from cloud.permissions import Action
from cloud.reports.catalogue import build_report
from cloud.reports.export import export


@performs(Action.VIEW_REPORTS)
@click.command("report")
@click.argument("kind", type=click.Choice(["turnover", "debtors", "payments", "collection", "consumption", "revenue",
                                          "regulator"]))
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--period", required=True, help="YYYY-MM")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "xlsx"]), default="json", show_default=True)
@click.option("--out", "out", default="", type=click.Path(dir_okay=False), help="file to write (default: stdout; "
              "needed for xlsx)")
@click.option("--lang", type=click.Choice(["uk", "en"]), default="uk", show_default=True)
@with_appcontext
def report_cmd(kind, org_ref, period, fmt, out, lang):
    """A report as on the page: turnover (ОСВ), debtors, payments, collection, consumption, revenue, regulator.

    Example: balans cloud report turnover --org 1 --period 2026-10 --format xlsx --out osv-2026-10.xlsx
    """


    if fmt == "xlsx" and not out:
        raise click.ClickException("--format xlsx needs --out FILE (a workbook is not for the terminal)")
    with session_scope(_app()) as db:
        try:
            report = build_report(db, find_org(db, org_ref), kind, period, lang=lang)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    body, _, _ = export(report, fmt)
    if out:
        Path(out).write_bytes(body)
        click.echo(f"{out}: {report.title}, {len(report.rows)} rows", err=True)
    else:
        click.echo(body.decode("utf-8"))


COMMANDS = [report_cmd]
