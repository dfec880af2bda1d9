"""``balans cloud cash | unmatched | assign-payment | reverse-payment | link-reversal``: the accountant's payment
work from the command line, thin over cloud/payments (the same functions the pages call)."""

from __future__ import annotations

import json
from decimal import InvalidOperation
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from cloud.cli.lookup import app as _app
from cloud.cli.lookup import day_option, find_org, performs
from cloud.clock import kyiv_today
from cloud.db import session_scope
from cloud.models import Payment, PaymentReversal
from cloud.payments.csv_statement import parse_amount
from cloud.payments.importer import PaymentEntryError, cash_payment, import_statement, resolve_unmatched
from cloud.payments.queue import conflicting_ibans, find_account, unmatched_payments
from cloud.payments.reversals import (
    ReversalError,
    apply_reversal,
    candidates_for,
    reverse_payment,
    unlinked_reversals,
)
from cloud.payments.statement import StatementError
from cloud.permissions import Action


def _payment(db, org_id: int, payment_id: int):
    payment = db.scalar(select(Payment).where(Payment.org_id == org_id, Payment.id == payment_id))
    if payment is None:
        raise click.ClickException(f"payment {payment_id} does not exist in this organisation")
    return payment


@performs(Action.MANAGE_PAYMENTS)
@click.command("cash")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--account", required=True, help="account number (особовий рахунок); «1001» finds «01001»")
@click.option("--amount", required=True, help="UAH, e.g. 1250.40 or «1 250,40»")
@click.option("--date", "day", default="", help="the day it was paid, YYYY-MM-DD (default: today)")
@click.option("--receipt", default="", help="receipt number (квитанція): the same receipt twice books once; "
              "without it Balans numbers the receipt")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def cash_cmd(org_ref, account, amount, day, receipt, as_json):
    """Cash taken at the office, onto an account; audited.

    Example: balans cloud cash --org 1 --account 01001 --amount 1250.40 --date 2026-11-10 --receipt КВ-17
    """

    try:
        value = parse_amount(amount, decimal_comma=True)
    except InvalidOperation:
        raise click.ClickException(f"--amount {amount!r} is not an amount (e.g. 1250.40)") from None
    with session_scope(current_app._get_current_object()) as db:
        org = find_org(db, org_ref)
        try:
            payment, created = cash_payment(db, org, find_account(db, org.id, account), value, day_option(day), "cli",
                                            receipt, today=kyiv_today())
        except PaymentEntryError as exc:
            raise click.ClickException(str(exc)) from exc
        result = {"payment": payment.id, "account": account, "amount_uah": f"{payment.amount:.2f}",
                  "date": payment.booked.isoformat(), "receipt": payment.key.removeprefix("cash:"),
                  "status": "booked" if created else "already booked"}
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        click.echo(f"{result['status']}: {result['amount_uah']} UAH on {account}, {result['date']}, "
                   f"receipt {result['receipt']} (payment {result['payment']})")


@performs(Action.MANAGE_PAYMENTS)
@click.command("unmatched")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def unmatched_cmd(org_ref, as_json):
    """The unmatched queue: payments waiting for an account, untrusted payer IBANs, reversals to link.

    Example: balans cloud unmatched --org 1 --json
    """
    with session_scope(current_app._get_current_object()) as db:
        org = find_org(db, org_ref)
        conflicts = conflicting_ibans(db, org.id)
        queue = [{"payment": p.id, "booked": p.booked.isoformat(), "amount_uah": f"{p.amount:.2f}", "payer": p.payer,
                  "payer_iban": p.payer_iban, "purpose": p.purpose, "why": p.matched_by,
                  "iban_conflict": list(conflicts[p.payer_iban].accounts) if p.payer_iban in conflicts else None}
                 for p in unmatched_payments(db, org.id, limit=100_000)]
        reversals = [{"reversal": r.id, "booked": r.booked.isoformat(), "amount_uah": f"{r.amount:.2f}",
                      "counterpart": r.counterpart, "counterpart_iban": r.counterpart_iban, "purpose": r.purpose,
                      "candidates": [c.id for c in candidates_for(db, r)]} for r in unlinked_reversals(db, org.id)]
        ibans = {iban: list(c.accounts) for iban, c in conflicts.items()}
    if as_json:
        click.echo(json.dumps({"payments": queue, "conflicting_ibans": ibans, "unlinked_reversals": reversals},
                              ensure_ascii=False, indent=2))
        return
    for p in queue:
        warning = f"  ! IBAN paid for {', '.join(p['iban_conflict'])}" if p["iban_conflict"] else ""
        click.echo(f"{p['payment']:>8}  {p['booked']}  {p['amount_uah']:>12}  {p['payer_iban'] or '-':<29}  "
                   f"{p['payer']} | {p['purpose']}{warning}")
    for r in reversals:
        click.echo(f"reversal {r['reversal']}: -{r['amount_uah']} {r['booked']} {r['counterpart_iban']} — candidate "
                   f"payments {r['candidates'] or 'none'}")
    click.echo(f"{len(queue)} unmatched, {len(reversals)} reversals to link, {len(ibans)} conflicting IBANs")


@performs(Action.MANAGE_PAYMENTS)
@click.command("assign-payment")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--payment", "payment_id", required=True, type=int, help="the payment's id (balans cloud unmatched)")
@click.option("--account", required=True, help="account number")
@with_appcontext
def assign_payment_cmd(org_ref, payment_id, account):
    """Assign a queued payment to an account; the payer IBAN is remembered (or marked conflicting).

    Example: balans cloud assign-payment --org 1 --payment 42 --account 04001
    """
    with session_scope(current_app._get_current_object()) as db:
        org = find_org(db, org_ref)
        payment = _payment(db, org.id, payment_id)
        try:
            target = find_account(db, org.id, account)
            iban = resolve_unmatched(db, payment, target, "cli")
        except PaymentEntryError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"payment {payment.id} ({payment.amount:.2f} UAH) on account {target.number}; payer IBAN: {iban}")


@performs(Action.MANAGE_PAYMENTS)
@click.command("reverse-payment")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--payment", "payment_id", required=True, type=int)
@click.option("--date", "day", default="", help="YYYY-MM-DD (default: today)")
@click.option("--reason", required=True, help="kept with the reversal and in the audit log")
@with_appcontext
def reverse_payment_cmd(org_ref, payment_id, day, reason):
    """Reverse a whole payment (a cash entry made in error, a refund paid outside the bank statement).

    Example: balans cloud reverse-payment --org 1 --payment 42 --reason "внесено двічі"
    """
    with session_scope(current_app._get_current_object()) as db:
        org = find_org(db, org_ref)
        payment = _payment(db, org.id, payment_id)
        try:
            done = reverse_payment(db, payment, "hand", f"hand:{payment.id}", day_option(day), "cli", purpose=reason)
        except ReversalError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"payment {payment.id} ({payment.amount:.2f} UAH) {'reversed' if done else 'was already reversed'}")


@performs(Action.MANAGE_PAYMENTS)
@click.command("link-reversal")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--reversal", "reversal_id", required=True, type=int, help="(balans cloud unmatched)")
@click.option("--payment", "payment_id", required=True, type=int)
@with_appcontext
def link_reversal_cmd(org_ref, reversal_id, payment_id):
    """Link a bank reversal Balans could not place to the payment it undoes.

    Example: balans cloud link-reversal --org 1 --reversal 3 --payment 42
    """
    with session_scope(current_app._get_current_object()) as db:
        org = find_org(db, org_ref)
        reversal = db.scalar(select(PaymentReversal).where(PaymentReversal.org_id == org.id,
                                                           PaymentReversal.id == reversal_id,
                                                           PaymentReversal.payment_id.is_(None)))
        if reversal is None:
            raise click.ClickException(f"reversal {reversal_id} is not waiting to be linked in this organisation")
        try:
            apply_reversal(db, reversal, _payment(db, org.id, payment_id), "cli")
        except ReversalError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"payment {payment_id} reversed by reversal {reversal_id}")


@performs(Action.MANAGE_PAYMENTS)
@click.command("import-statement")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", default="camt053", show_default=True, help="camt053, csv:MAPPING "
              "(csv:privatbank-business, csv:monobank-business) or csv:path/to/mapping.toml")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def import_statement_cmd(org_ref, path, fmt, as_json):
    """Import a bank statement: whole or nothing; a re-import adds nothing.

    Example: balans cloud import-statement --org 1 statement-2026-11-03.xml --json
    """

    with session_scope(_app()) as db:
        try:
            result = import_statement(db, find_org(db, org_ref), Path(path).read_bytes(), Path(path).name, fmt, "cli")
        except (StatementError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(f"{result.imported} imported ({result.matched} matched, {result.unmatched} unmatched), "
                   f"{result.duplicates} already there; {result.total:.2f} UAH"
                   + (f"; {result.reversed} reversed ({result.reversed_total:.2f} UAH"
                      + (f", {result.partial_refunds} of them partial refunds" if result.partial_refunds else "")
                      + ")" if result.reversed else "")
                   + (f"; {result.unlinked_reversals} reversals to link (balans cloud unmatched)"
                      if result.unlinked_reversals else "")
                   + (f"; {result.conflicting_ibans} payer IBANs no longer trusted" if result.conflicting_ibans
                      else ""))



COMMANDS = [import_statement_cmd, cash_cmd, unmatched_cmd, assign_payment_cmd, reverse_payment_cmd, link_reversal_cmd]
