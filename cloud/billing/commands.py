"""``balans cloud correct | heating-season | set-account | enter-reading | import-readings | replace-meter``: the
office's billing work from the command line, thin over cloud/billing (the same functions the pages call)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from cloud.accounts.organisations import SetupError, set_tariff
from cloud.billing.accounts import set_billing_details
from cloud.billing.consumption import ReadingError
from cloud.billing.corrections import CorrectionError, record_correction
from cloud.billing.delivery import queue_invoice_emails, run_invoices, run_pdf
from cloud.billing.errors import BillingError
from cloud.billing.heat_run import set_heating_season
from cloud.billing.readings import enter_reading, import_readings, replace_meter
from cloud.billing.run import billing_run
from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_org, find_site, may, performs, site_org_option
from cloud.db import session_scope
from cloud.models import Account
from cloud.permissions import Action
from shared.calendar import from_kyiv_wall
from shared.money import MoneyError, uah


@performs(Action.CORRECT_INVOICE)
@click.command("correct")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--invoice", "invoice_number", required=True, help="number of the issued invoice to correct")
@click.option("--amount", required=True, help="UAH, kopecks at most: positive charges more, negative credits")
@click.option("--kwh", default="0", help="kWh added (+) or taken off (−), printed on the line")
@click.option("--reason", required=True, help="why — printed on the next invoice")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def correct(org_ref, invoice_number, amount, kwh, reason, as_json):
    """Record a correction (перерахунок) of an issued invoice. The invoice never changes: the correction is a
    line on the account's next invoice, and a ledger entry referring to the original when that one is issued.

    Example: balans cloud correct --org 1 --invoice 000042 --amount=-120.50 --kwh=-25 --reason "лічильник повірено"
    """
    with session_scope(_app()) as db:
        try:
            correction = record_correction(db, find_org(db, org_ref), invoice_number, uah(amount), reason, "cli",
                                           uah(kwh))
        except (CorrectionError, MoneyError) as exc:
            raise click.ClickException(str(exc)) from exc
        result = {"correction": correction.id, "invoice": invoice_number, "amount": f"{correction.amount:.2f}",
                  "status": "pending: on the account's next invoice"}
    click.echo(json.dumps(result, ensure_ascii=False) if as_json else
               f"correction {result['correction']} of invoice №{invoice_number}: {result['amount']} UAH, "
               "goes onto the account's next invoice")


@performs(Action.SET_UP)
@click.command("heating-season")
@click.option("--org", "org_ref", required=True)
@click.option("--from", "starts", required=True, help="YYYY-MM-DD, the first day of heating")
@click.option("--to", "ends", default="", help="YYYY-MM-DD, the last day (leave out while it goes on)")
@with_appcontext
def heating_season(org_ref, starts, ends):
    """Record the heating season the council declared.  Example: balans cloud heating-season --org 2 --from 2026-10-15"""
    with session_scope(_app()) as db:
        try:
            season = set_heating_season(db, find_org(db, org_ref), date.fromisoformat(starts),
                                        date.fromisoformat(ends) if ends else None)
        except BillingError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"heating season from {season.starts}" + (f" to {season.ends}" if season.ends else ""))


@performs(Action.SET_UP)
@click.command("set-account")
@click.option("--org", "org_ref", required=True)
@click.option("--number", required=True, help="особовий рахунок")
@click.option("--category", default=None, help="customer segment: household | business | …")
@click.option("--area", default=None, help="heated area, m² (heat)")
@click.option("--common-coefficient", default=None, help="co-owners' coefficient on the common-use share: "
              "1, 0.2–0.9 or 1.1–2")
@click.option("--benefit-pct", default=None, help="пільга, % of the cost within the norm (0 removes it)")
@click.option("--benefit-norm-kwh", default=None, help="electricity: the benefit's norm, kWh a month")
@click.option("--benefit-norm-m2", default=None, help="heat: the benefit's social norm of area, m²")
@click.option("--subsidy", default=None, help="субсидія, UAH a month (0 ends it)")
@with_appcontext
def set_account(org_ref, number, category, area, common_coefficient, benefit_pct, benefit_norm_kwh, benefit_norm_m2,
                subsidy):
    """Set an account's billing details (audited).  Example: balans cloud set-account --org 2 --number 12-045
    --area 54.3 --benefit-pct 50 --benefit-norm-m2 52.5"""
    with session_scope(_app()) as db:
        org = find_org(db, org_ref)
        account = db.scalar(select(Account).where(Account.org_id == org.id, Account.number == number))
        if account is None:
            raise click.ClickException(f"account {number} does not exist in {org.name}")
        try:
            details = set_billing_details(
                db, account, "cli", category=category, heated_area_m2=area, common_coefficient=common_coefficient,
                benefit_pct=benefit_pct, benefit_norm_kwh=benefit_norm_kwh, benefit_norm_m2=benefit_norm_m2,
                subsidy_uah=subsidy)
        except BillingError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"account {number}: " + ", ".join(f"{name} {value}" for name, value in details.items()
                                                     if value is not None))


@performs(Action.RUN_BILLING)
@click.command("enter-reading")
@click.option("--site", "site_code", required=True)
@site_org_option
@click.option("--meter", "meter_code", required=True)
@click.option("--at", "at", required=True, help="YYYY-MM-DD[ HH:MM], Kyiv time (or with an offset: …T10:00+00:00)")
@click.option("--value", required=True, help="the counter, kWh (or Gcal with --gcal)")
@click.option("--gcal", is_flag=True, help="a heat meter's counter")
@with_appcontext
def enter_reading_cmd(site_code, org_ref, meter_code, at, value, gcal):
    """Enter a meter reading taken by the office.  Example: balans cloud enter-reading --site TP-118 --meter M01001 --at 2026-11-01 --value 15420"""

    with session_scope(_app()) as db:
        try:
            enter_reading(db, find_site(db, site_code, org_ref), meter_code, from_kyiv_wall(datetime.fromisoformat(at)),
                          Decimal(value.replace(",", ".")), "cli", "heat_gcal" if gcal else "import_kwh")
        except (ReadingError, ValueError, ArithmeticError) as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"meter {meter_code}: {value} at {at}")


@performs(Action.RUN_BILLING)
@click.command("import-readings")
@click.option("--site", "site_code", required=True)
@site_org_option
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def import_readings_cmd(site_code, org_ref, path):
    """Import the office's readings from a CSV (meter,at,value[,register]); all rows or none.

    Example: balans cloud import-readings --site TP-118 obkhid-2026-11.csv
    """

    with session_scope(_app()) as db:
        try:
            count = import_readings(db, find_site(db, site_code, org_ref), Path(path).read_text(encoding="utf-8-sig"),
                                    Path(path).name, "cli")
        except ReadingError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{count} readings from {path}")


@performs(Action.RUN_BILLING)
@click.command("replace-meter")
@click.option("--site", "site_code", required=True)
@site_org_option
@click.option("--old", "old_code", required=True)
@click.option("--new", "new_code", required=True)
@click.option("--at", "at", required=True, help="YYYY-MM-DD HH:MM, Kyiv time (or with an offset)")
@click.option("--old-reading", required=True, help="the old meter's last counter")
@click.option("--new-reading", default="0", help="the new meter's first counter")
@with_appcontext
def replace_meter_cmd(site_code, org_ref, old_code, new_code, at, old_reading, new_reading):
    """Record a meter replaced: the month is billed as the old meter's part plus the new one's.

    Example: balans cloud replace-meter --site TP-118 --old M01001 --new M01001-2 --at "2026-10-15 12:00" --old-reading 15200
    """

    with session_scope(_app()) as db:
        try:
            replace_meter(db, find_site(db, site_code, org_ref), old_code, new_code, from_kyiv_wall(datetime.fromisoformat(at)),
                          Decimal(old_reading), Decimal(new_reading), "cli")
        except (ReadingError, ValueError, ArithmeticError) as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"meter {old_code} replaced by {new_code} at {at}")


@performs(Action.SET_UP)
@click.command("set-tariff")
@click.option("--org", "org_ref", required=True)
@click.option("--kind", default="cooperative", help="cooperative | supplier | heat")
@click.option("--price", required=True, help="UAH/kWh (purchase price for a cooperative, sale price for a supplier), "
              "UAH/Gcal for heat")
@click.option("--coefficient", default="1", help="approved coefficient for losses and maintenance")
@click.option("--from", "valid_from", required=True, help="YYYY-MM-DD")
@click.option("--to", "valid_to", default="", help="YYYY-MM-DD, inclusive (open-ended without)")
@click.option("--segment", default="", help="supplier: the customer segment (account category) this grid is for")
@click.option("--zones", default="", help="time of use: day=1,night=0.5 or night=0.4,half_peak=1,peak=1.5")
@click.option("--fee", default="0", help="fixed monthly fee per account, UAH")
@click.option("--fee-name", default="", help="as printed, e.g. «абонентська плата»")
@with_appcontext
def set_tariff_cmd(org_ref, kind, price, coefficient, valid_from, valid_to, segment, zones, fee, fee_name):
    """Add a tariff.  Example: balans cloud set-tariff --org 1 --price 4.20 --coefficient 1.15 --from 2026-01-01

    A supplier's two-zone household grid: --kind supplier --segment household --price 4.32 --zones day=1,night=0.5;
    heat: --kind heat --price 1654.18 --fee 30 --fee-name "абонентська плата".
    """
    try:
        zone_map = {z.split("=")[0].strip(): Decimal(z.split("=")[1]) for z in zones.split(",") if z.strip()}
    except (IndexError, ArithmeticError) as exc:
        raise click.ClickException(f"--zones must look like day=1,night=0.5, got {zones!r}") from exc
    with session_scope(_app()) as db:
        try:
            tariff = set_tariff(db, find_org(db, org_ref), kind, Decimal(price), Decimal(coefficient),
                                date.fromisoformat(valid_from), date.fromisoformat(valid_to) if valid_to else None,
                                segment=segment, zones=zone_map or None, monthly_fee=Decimal(fee), fee_name=fee_name)
        except SetupError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"tariff {tariff.id}")


@performs(Action.RUN_BILLING)
@click.command("bill")
@click.option("--site", "site_code", required=True)
@site_org_option
@click.option("--period", required=True, help="YYYY-MM")
@click.option("--issue", is_flag=True, help="issue the invoices (otherwise a draft preview)")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def bill(site_code, org_ref, period, issue, as_json):
    """Billing run for a site and period.  Example: balans cloud bill --site TP-118 --period 2026-10 --issue"""
    if issue:
        may("bill", Action.ISSUE_INVOICES)
    with session_scope(_app()) as db:
        try:
            result = billing_run(db, find_site(db, site_code, org_ref), period, issue=issue, actor="cli")
        except BillingError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
    else:
        recovery = result.summary.get("cost_recovery_pct")
        click.echo(f"{result.status}: {result.invoices} invoices, {result.summary['distributed_uah']} UAH"
                   + (f", cost recovery {recovery} %" if recovery else "")
                   + (f", {result.summary['estimated']} estimated" if result.summary.get("estimated") else ""))
        for problem in result.problems:
            click.echo(f"  ! {problem}", err=True)


@performs(Action.PRINT_INVOICES)
@click.command("invoices")
@click.option("--site", "site_code", required=True)
@site_org_option
@click.option("--period", required=True, help="YYYY-MM")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False))
@with_appcontext
def invoices_cmd(site_code, org_ref, period, out):
    """All invoices of a run as one PDF.  Example: balans cloud invoices --site TP-118 --period 2026-10 --out r.pdf"""

    with session_scope(_app()) as db:
        site = find_site(db, site_code, org_ref)
        if not run_invoices(db, site, period):
            raise click.ClickException(f"site {site.code} has no invoices for {period!r}: bill it first")
        pdf = run_pdf(db, site, period)
    Path(out).write_bytes(pdf)
    click.echo(f"{out}: {len(pdf)} bytes")


@performs(Action.SEND_MESSAGES)
@click.command("email-invoices")
@click.option("--site", "site_code", required=True)
@site_org_option
@click.option("--period", required=True, help="YYYY-MM")
@with_appcontext
def email_invoices(site_code, org_ref, period):
    """Queue an e-mail with the PDF for every issued invoice (sent by send-mail).

    Example: balans cloud email-invoices --site TP-118 --period 2026-10 && balans cloud send-mail
    """
    with session_scope(_app()) as db:
        click.echo(f"{queue_invoice_emails(db, find_site(db, site_code, org_ref), period)} e-mails queued")



COMMANDS = [set_tariff_cmd, bill, invoices_cmd, email_invoices, correct, heating_season, set_account, enter_reading_cmd, import_readings_cmd, replace_meter_cmd]
