"""What a signed batch may say: times within a window of the gateway's clock, quantities that are numbers a
meter can show, event kinds and notes that are plain text. A signature proves who sent a batch, not that its
content makes sense — a gateway with a broken clock or a stolen key is still a gateway. Pure of the database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from cloud.ingest.errors import IngestError

DB_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how rows.db_time writes a time: such strings compare as the times do


@dataclass(frozen=True)
class IngestLimits:
    """The bounds of a plausible batch (docs/batch-format.md, «Limits»); the defaults are the settings'."""

    skew_minutes: int = 15  # BALANS_INGEST_CLOCK_SKEW_MINUTES: how far ahead a clock may run
    backlog_days: int = 400  # BALANS_INGEST_BACKLOG_DAYS: how old a row may be, against the batch's `created`
    earliest: datetime = datetime(2020, 1, 1)  # BALANS_INGEST_EARLIEST: nothing is metered before it
    max_interval_kwh: Decimal = Decimal(345)  # BALANS_INGEST_MAX_INTERVAL_KWH: 2 000 A × 230 V × 3 × 15 min

    def window(self, created: datetime, now: datetime) -> tuple[str, str]:
        """(earliest, latest) row time as DB_TIME strings."""
        low = max(self.earliest, created - timedelta(days=self.backlog_days))
        # The upper bound is the cloud's clock, not `created`: a gateway's clock is checked against it
        # (check_created), and a row sealed a little after its batch's stamp is harmless.
        high = now + timedelta(minutes=self.skew_minutes)
        return low.strftime(DB_TIME), high.strftime(DB_TIME)

    def check_created(self, created: datetime, now: datetime) -> None:
        if created > now + timedelta(minutes=self.skew_minutes):
            raise IngestError(422, "implausible_time", f"created {created:%Y-%m-%dT%H:%M:%SZ} is more than "
                              f"{self.skew_minutes} min ahead of the cloud's clock; set the gateway's clock",
                              "created")
        if created < self.earliest:
            raise IngestError(422, "implausible_time", f"created {created:%Y-%m-%dT%H:%M:%SZ} is before "
                              f"{self.earliest:%Y-%m-%d}; the gateway's clock is not set", "created")


DEFAULT_LIMITS = IngestLimits()


def check_row_time(value: str, window: tuple[str, str], field: str) -> None:
    low, high = window
    if not low <= value <= high:
        raise IngestError(422, "implausible_time", f"{value[:19]} is outside {low[:19]} … {high[:19]} (UTC): "
                          "no later than the cloud's clock, no older than the backlog "
                          "allowed before the batch's `created`", field)


# A quantity is a plain decimal: no exponent, no sign but a minus, at most 12 digits before the point.
QUANTITY = re.compile(r"-?\d{1,12}(\.\d{1,9})?")
MEANING = re.compile(r"[a-z][a-z0-9_]{0,39}")
COUNTER_SUFFIXES = ("_kwh", "_kvarh", "_mwh", "_gcal", "_gj", "_m3")  # registers that only grow: never negative
MAX_QUANTITIES = 64  # meanings in one reading; a profile reads a few dozen at most


def check_quantities(values: dict, field: str) -> None:
    """A reading's values: each meaning an identifier, each value a plain decimal, counters not negative."""
    if len(values) > MAX_QUANTITIES:
        raise IngestError(422, "invalid_batch", f"{len(values)} values, over the limit of {MAX_QUANTITIES}", field)
    for meaning, value in values.items():
        if not MEANING.fullmatch(meaning):
            raise IngestError(422, "invalid_batch", "a meaning is a lower-case identifier of at most 40 "
                              f"characters, e.g. import_kwh; got {meaning[:60]!r}", f"{field}.{meaning[:60]}")
        if not QUANTITY.fullmatch(value):
            raise IngestError(422, "invalid_batch", f"must be a plain decimal number such as \"17919.000\" "
                              f"(no exponent, at most 12 digits before the point); got {value[:40]!r}",
                              f"{field}.{meaning}")
        if value.startswith("-") and meaning.endswith(COUNTER_SUFFIXES):
            raise IngestError(422, "invalid_batch", f"a counter is never negative; got {value!r}",
                              f"{field}.{meaning}")


def plausible_quantities(readings: list[dict]) -> bool:
    """The common case in one pass over every value: all well-formed (then no row needs a closer look)."""
    for row in readings:
        values = row["q"]
        if len(values) > MAX_QUANTITIES:
            return False
        for meaning, value in values.items():
            if not (MEANING.fullmatch(meaning) and QUANTITY.fullmatch(value)) or (
                    value[0] == "-" and meaning.endswith(COUNTER_SUFFIXES)):
                return False
    return True


def check_interval_kwh(wh: int, limits: IngestLimits, field: str) -> None:
    if wh > limits.max_interval_kwh * 1000:
        raise IngestError(422, "implausible_quantity", f"{Decimal(wh).scaleb(-3)} kWh in one interval is over the "
                          f"{limits.max_interval_kwh} kWh a meter here can pass in 15 minutes", field)


INTERVAL_FLAGS = ("measured", "estimated")
PRIORITIES = ("normal", "high")
# An event's kind is an identifier: it cannot carry markup, nor pass for the cloud's own `security:` events.
KIND = re.compile(r"[a-z][a-z0-9_]{0,39}")
DETAIL_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_DETAIL_KEYS, MAX_DETAIL_TEXT, MAX_DETAIL_LIST = 32, 500, 64
# Control characters, and what opens an HTML/XML tag, comment or entity-like construct ("a < b" stays fine).
UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f]|<[A-Za-z/!?]")


def check_event(event: dict, field: str) -> None:
    if not KIND.fullmatch(event["kind"]):
        raise IngestError(422, "invalid_batch", "an event kind is a lower-case identifier of at most 40 "
                          f"characters, e.g. meter_offline; got {event['kind'][:60]!r}", f"{field}.kind")
    meter = event.get("m")
    if meter is not None and type(meter) is not str:
        raise IngestError(422, "invalid_batch", "must be a meter id as text, or left out", f"{field}.m")
    detail = event.get("detail")
    if detail is None:
        return
    if type(detail) is not dict:
        raise IngestError(422, "invalid_batch", "must be an object, or left out", f"{field}.detail")
    if len(detail) > MAX_DETAIL_KEYS:
        raise IngestError(422, "invalid_batch", f"{len(detail)} keys, over the limit of {MAX_DETAIL_KEYS}",
                          f"{field}.detail")
    for key, value in detail.items():
        if not DETAIL_KEY.fullmatch(key):
            raise IngestError(422, "invalid_batch", f"a key is a lower-case identifier; got {key[:60]!r}",
                              f"{field}.detail")
        _check_detail_value(value, f"{field}.detail.{key}", nested=False)


def _check_detail_value(value: object, field: str, nested: bool) -> None:
    if value is None or type(value) is bool:
        return
    if type(value) is int:
        if abs(value) >= 2**53:  # what any JSON reader (a browser, a spreadsheet) still reads exactly
            raise IngestError(422, "invalid_batch", "a number here is below 2^53 in size", field)
        return
    if type(value) is str:
        if len(value) > MAX_DETAIL_TEXT:
            raise IngestError(422, "invalid_batch", f"is {len(value)} characters, over the limit of "
                              f"{MAX_DETAIL_TEXT}", field)
        if UNSAFE_TEXT.search(value):
            raise IngestError(422, "invalid_batch", "plain text only: no control characters and no markup "
                              "(<tag>)", field)
        return
    if type(value) is list and not nested:
        if len(value) > MAX_DETAIL_LIST:
            raise IngestError(422, "invalid_batch", f"{len(value)} items, over the limit of {MAX_DETAIL_LIST}",
                              field)
        for index, item in enumerate(value):
            _check_detail_value(item, f"{field}[{index}]", nested=True)
        return
    raise IngestError(422, "invalid_batch", "must be text, a whole number, true/false, null or a list of them",
                      field)
