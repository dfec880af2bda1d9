"""Reminders to debtors: per-organisation rules (debt over X UAH, N days past due), by e-mail and Telegram,
through the outbox — at most one per rule, account and period; residents can opt out.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from string import Formatter

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.models import Account, Organisation, ReminderRule
from cloud.notifications.mail import queue_mail
from cloud.reports.accounting import debtors

# What a rule's own text may say: {account} the особовий рахунок, {debt} the debt in UAH, {holder} the name.
PLACEHOLDERS = ("account", "debt", "holder")


def template_problems(text: str) -> list[str]:
    """What in a rule's text cannot be filled: each unknown {name}, or the text itself when a brace is unpaired
    ("{{" and "}}" print one brace). An empty list: the text can be sent."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in Formatter().parse(text) if name is not None]
    except ValueError:
        return [text]
    return [f"{{{name}}}" for name, spec, conversion in fields if name not in PLACEHOLDERS or spec or conversion]


def reminder_text(template: str, org: Organisation, account: Account, debt: Decimal, days: int) -> str:
    """The rule's own text with its placeholders filled, or — for "" — the standard one."""
    if template.strip():
        return template.format(account=account.number, debt=f"{debt:.2f}", holder=account.holder)
    return (f"Шановний(а) {account.holder}! За особовим рахунком {account.number} борг {debt:.2f} грн, "
            f"найдавніший термін оплати минув {days} дн. тому. Просимо сплатити. {org.name}")


def queue_reminders(db: Session, org: Organisation, today: date) -> int:
    period = today.strftime("%Y-%m")
    accounts = {a.number: a for a in db.scalars(select(Account).where(Account.org_id == org.id))}
    rules = db.scalars(select(ReminderRule).where(ReminderRule.org_id == org.id, ReminderRule.active)).all()
    queued = 0
    for debtor in debtors(db, org.id, today):
        account = accounts[debtor.account]
        if account.reminders_opt_out or debtor.oldest_due is None:
            continue
        days = (today - debtor.oldest_due).days
        for rule in rules:
            if debtor.debt < rule.min_debt or days < rule.min_days:
                continue
            text = reminder_text(rule.text or "", org, account, debtor.debt, days)
            subject = f"Нагадування про борг, о/р {account.number}"
            for channel in rule.channels.split(","):
                to = account.email if channel == "email" else account.telegram_chat_id if channel == "telegram" else ""
                if not to:
                    continue
                message = queue_mail(db, org.id, to, subject, text, kind="reminder", channel=channel,
                                     key=f"reminder:{rule.id}:{account.id}:{period}:{channel}")
                queued += message is not None
    return queued
