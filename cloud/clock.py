"""The cloud's clock: instants as naive UTC (how its database columns hold them), days as Kyiv has them."""

from __future__ import annotations

from datetime import UTC, date, datetime

from shared.calendar import kyiv_day


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def kyiv_today() -> date:
    """Today's date in Kyiv: the office's day, whatever the server's own time zone."""
    return kyiv_day(utcnow())
