"""The calendar people see and bill by: months and days of Kyiv (Europe/Kyiv), instants stored in UTC.

A billing period «2026-10» is October as a Kyiv wall calendar has it: from 1 October 00:00 Kyiv
(30 September 21:00 UTC, summer time) to 1 November 00:00 Kyiv (31 October 22:00 UTC, winter time).
Both sides store and send instants in UTC; every conversion between the two lives here.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

KYIV = ZoneInfo("Europe/Kyiv")
ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"  # the one instant format on the wire, in batches and in the site document


PERIOD = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


EARLIEST_YEAR, LATEST_YEAR = 1900, 2999  # no meter, bill or bank booking lives outside these


def parse_period(period: str) -> tuple[int, int]:
    """``YYYY-MM`` → (year, month), with an error that shows what was given. Only the one spelling: a period
    is a key of runs, invoices and ledger entries, so «2026-1» must not be a second name for «2026-01»."""
    found = PERIOD.fullmatch(period) if isinstance(period, str) else None
    if found is None:
        raise ValueError(f"period must be YYYY-MM, got {period!r}")
    if not EARLIEST_YEAR <= int(found[1]) <= LATEST_YEAR:
        raise ValueError(f"period {period!r}: the year must be {EARLIEST_YEAR}–{LATEST_YEAR}")
    return int(found[1]), int(found[2])


def period_days(period: str) -> tuple[date, date]:
    """The first and the last calendar day of the month ``YYYY-MM`` (inclusive)."""
    year, month = parse_period(period)
    return date(year, month, 1), date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


def kyiv_midnight(day: date) -> datetime:
    """00:00 of a Kyiv calendar day, as an aware UTC instant."""
    return datetime(day.year, day.month, day.day, tzinfo=KYIV).astimezone(UTC)


def naive_midnight(day: date) -> datetime:
    """:func:`kyiv_midnight` as naive UTC, the cloud's form."""
    return kyiv_midnight(day).replace(tzinfo=None)


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """The Kyiv month ``YYYY-MM`` as [start, end) aware UTC instants."""
    year, month = parse_period(period)
    return kyiv_midnight(date(year, month, 1)), kyiv_midnight(date(year + month // 12, month % 12 + 1, 1))


def naive_period_bounds(period: str) -> tuple[datetime, datetime]:
    """:func:`period_bounds` as naive UTC, the way the cloud's database columns hold instants."""
    start, end = period_bounds(period)
    return start.replace(tzinfo=None), end.replace(tzinfo=None)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """A Kyiv day as [start, end) aware UTC instants (23 or 25 hours on the days the clocks change)."""
    return kyiv_midnight(day), kyiv_midnight(day + timedelta(days=1))


def as_utc(ts: datetime) -> datetime:
    """An aware instant in UTC; a naive one is taken as UTC already (how the cloud's columns hold them)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def from_kyiv_wall(ts: datetime) -> datetime:
    """A time a person typed — Kyiv wall-clock when it carries no offset — as naive UTC, the cloud's form.
    In the hour repeated when the clocks go back, the first (summer-time) one is meant."""
    aware = ts.replace(tzinfo=KYIV) if ts.tzinfo is None else ts
    return aware.astimezone(UTC).replace(tzinfo=None)


def kyiv_time(ts: datetime) -> datetime:
    """The Kyiv wall-clock time of an instant (naive taken as UTC)."""
    return as_utc(ts).astimezone(KYIV)


def kyiv_day(ts: datetime) -> date:
    """The Kyiv calendar day an instant falls on."""
    return kyiv_time(ts).date()


def kyiv_period(ts: datetime) -> str:
    """The Kyiv month (``YYYY-MM``) an instant falls in."""
    return kyiv_time(ts).strftime("%Y-%m")


def iso_utc(ts: datetime) -> str:
    """An instant as ``YYYY-MM-DDTHH:MM:SSZ`` (naive taken as UTC)."""
    return as_utc(ts).strftime(ISO_UTC)


def parse_iso(text: str) -> datetime:
    """``…Z`` or ``…+hh:mm`` → an aware UTC instant; naive text is taken as UTC. A ValueError for text that is
    no time, and for a time at the ends of the calendar (year 1 or 9999 with an offset cannot even be moved
    to UTC, let alone to Kyiv)."""
    try:
        instant = as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except OverflowError as exc:
        raise ValueError(f"{text!r} lies outside the calendar") from exc
    if not EARLIEST_YEAR <= instant.year <= LATEST_YEAR:
        raise ValueError(f"{text!r}: the year must be {EARLIEST_YEAR}–{LATEST_YEAR}")
    return instant
