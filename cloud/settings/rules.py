"""Reminder rules (cloud/notifications/reminders.py sends by them): a name, the debt over which and the days past
due after which a debtor is reminded, the channels, and the message — "" for the standard one, else a text with
{account}, {debt} and {holder}. Created, changed and switched off (never deleted: the outbox refers to them)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.models import Organisation, ReminderRule
from cloud.notifications.reminders import PLACEHOLDERS, template_problems
from cloud.settings.fields import SettingError, decimal, text

CHANNELS = ("email", "telegram")
RULE_KEYS = ("rule_name", "min_debt", "min_days", "channels", "active", "text")
TEXT_LIMIT = 2000


def rules(db: Session, org_id: int) -> list[ReminderRule]:
    return list(db.scalars(select(ReminderRule).where(ReminderRule.org_id == org_id)
                           .order_by(ReminderRule.active.desc(), ReminderRule.id)))


def rule_values(rule: ReminderRule | None) -> dict[str, str]:
    if rule is None:
        return {"rule_name": "", "min_debt": "", "min_days": "", "channels": "email,telegram", "active": "yes",
                "text": ""}
    return {"rule_name": rule.name, "min_debt": f"{Decimal(rule.min_debt):.2f}", "min_days": str(rule.min_days),
            "channels": rule.channels, "active": "yes" if rule.active else "no", "text": rule.text or ""}


def rule_json(rule: ReminderRule) -> dict:
    values = rule_values(rule)
    return {"id": rule.id, "name": values["rule_name"], "min_debt": values["min_debt"], "min_days": rule.min_days,
            "channels": rule.channels.split(","), "active": rule.active, "text": rule.text or ""}


def own_rule(db: Session, org: Organisation, rule_id: int) -> ReminderRule | None:
    rule = db.get(ReminderRule, rule_id)
    return rule if rule is not None and rule.org_id == org.id else None


def _channels(value: str) -> str:
    names = [part.strip().lower() for part in value.replace(";", ",").split(",") if part.strip()]
    if not names or any(name not in CHANNELS for name in names):
        raise SettingError("channels", f"email and/or telegram, got {value!r}", "err_set_channels", value=value)
    return ",".join(name for name in CHANNELS if name in names)


def _days(value: str) -> int:
    cleaned = value.strip()
    if not cleaned.isdigit() or int(cleaned) > 3650:
        raise SettingError("min_days", f"whole days, 0–3650, got {value!r}", "err_set_days", value=value)
    return int(cleaned)


def _text(value: str) -> str:
    message = text("text", value.replace("\r\n", "\n"), TEXT_LIMIT)
    problems = template_problems(message)
    if problems:
        raise SettingError("text", f"unknown placeholder {problems[0]}; use {', '.join(PLACEHOLDERS)}",
                           "err_set_placeholder", name=problems[0][:60],
                           allowed=", ".join(f"{{{name}}}" for name in PLACEHOLDERS))
    return message


def _active(value: str) -> bool:
    return str(value).strip().lower() in ("yes", "true", "1", "on", "так")


PARSERS = {
    "rule_name": lambda v: text("rule_name", v, 100, required=True),
    "min_debt": lambda v: decimal("min_debt", v, 2),
    "min_days": _days,
    "channels": _channels,
    "active": _active,
    "text": _text,
}
COLUMNS = {"rule_name": "name"}


def save_rule(db: Session, org: Organisation, rule: ReminderRule | None, values: Mapping[str, str],
              actor: str) -> tuple[ReminderRule | None, list[SettingError]]:
    """Create (``rule`` None: name, min_debt and min_days needed) or change a rule from the given texts; returns
    the rule, or it unchanged (None) and every error."""
    errors: list[SettingError] = []
    parsed: dict[str, object] = {}
    given = dict(values)
    if rule is None:
        given = {**rule_values(None), **given}
    for key, value in given.items():
        if key not in PARSERS:
            errors.append(SettingError(key, "not a field of a reminder rule", "err_set_unknown"))
            continue
        if key in ("min_debt", "min_days") and not str(value).strip():
            errors.append(SettingError(key, "is required", "err_set_required"))
            continue
        try:
            parsed[key] = PARSERS[key](str(value))
        except SettingError as exc:
            errors.append(exc)
    if errors:
        return rule, errors
    before = rule_values(rule) if rule is not None else {}
    if rule is None:
        rule = ReminderRule(org_id=org.id, name="", min_debt=Decimal(0), min_days=0)
        db.add(rule)
    for key, value in parsed.items():
        setattr(rule, COLUMNS.get(key, key), value)
    db.flush()
    after = rule_values(rule)
    changed = [key for key in RULE_KEYS if before.get(key) != after[key]]
    if changed:
        audit(db, org.id, actor, "reminder_rule.update" if before else "reminder_rule.create",
              f"reminder_rule:{rule.id}", {k: before[k] for k in changed} if before else None,
              {k: after[k] for k in changed})
    return rule, []
