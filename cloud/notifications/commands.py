"""``balans cloud send-mail | remind``: the outbox of e-mail and Telegram messages, reminders to debtors."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_org, performs
from cloud.clock import kyiv_today
from cloud.db import session_scope
from cloud.notifications.mail import SmtpSender, TelegramSender, send_pending
from cloud.notifications.reminders import queue_reminders
from cloud.permissions import Action


@performs(Action.SEND_MESSAGES)
@click.command("send-mail")
@with_appcontext
def send_mail():
    """Send queued e-mail over SMTP (BALANS_SMTP_*) and Telegram messages (BALANS_TELEGRAM_TOKEN, _API).

    Example: BALANS_SMTP_HOST=mail.example.ua balans cloud send-mail
    """
    config = current_app.config
    sender = SmtpSender(config["SMTP_HOST"], int(config["SMTP_PORT"]), config["SMTP_USER"],
                        config["SMTP_PASSWORD"], str(config["SMTP_STARTTLS"]).lower() in ("1", "true", "yes"))
    telegram = TelegramSender(config["TELEGRAM_TOKEN"], config["TELEGRAM_API"]) if config["TELEGRAM_TOKEN"] else None
    with session_scope(_app()) as db:
        result = send_pending(db, sender, config["MAIL_FROM"], telegram=telegram)
    click.echo(f"{result['sent']} sent, {result['failed']} failed (will be retried)")


@performs(Action.SEND_MESSAGES)
@click.command("remind")
@click.option("--org", "org_ref", required=True)
@with_appcontext
def remind(org_ref):
    """Queue reminders to debtors by the organisation's rules (once per rule, account and month).

    Example: balans cloud remind --org 1 && balans cloud send-mail
    """


    with session_scope(_app()) as db:
        click.echo(f"{queue_reminders(db, find_org(db, org_ref), kyiv_today())} reminders queued")


COMMANDS = [send_mail, remind]
