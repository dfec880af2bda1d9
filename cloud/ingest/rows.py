"""A batch's rows checked and converted to what the database stores: the signature, the canonical parse, and
every reading, interval and event named by its place when it is wrong. Pure of the database."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloud.clock import utcnow
from cloud.ingest.errors import IngestError
from cloud.ingest.plausibility import (
    DB_TIME,
    DEFAULT_LIMITS,
    INTERVAL_FLAGS,
    PRIORITIES,
    IngestLimits,
    check_event,
    check_interval_kwh,
    check_quantities,
    check_row_time,
    plausible_quantities,
)
from shared.batch import BatchError, batch_hash, load_public_key, parse_batch, verify_signature


def verified_rows(public_key_pem: str, gateway_code: str, body: bytes, signature: bytes, meters: dict[str, int],
                  refusal_event: dict | None = None, limits: IngestLimits = DEFAULT_LIMITS) -> tuple:
    """Check the signature, parse and convert every row: (seq, prev, digest, readings, intervals, events).
    A refusal is an IngestError; a forged batch carries ``refusal_event`` (the security event to record)."""
    try:
        verify_signature(public_key(public_key_pem), body, signature)
    except BatchError as exc:
        event = {**refusal_event, "detail": {"bytes": len(body)}} if refusal_event else None
        raise IngestError(401, exc.code, exc.reason, exc.field, event=event) from exc
    try:
        document = parse_batch(body)
    except BatchError as exc:
        raise IngestError(422 if exc.code != "too_large" else 413, exc.code, exc.reason, exc.field) from exc
    if document["gateway"] != gateway_code:
        raise IngestError(422, "invalid_batch", "batch names another gateway than the header", "gateway")
    readings, intervals, events = batch_rows(document, meters, limits)
    return (document["seq"], document["prev"], batch_hash(body), readings, intervals, events,
            document.get("config"))


@lru_cache(maxsize=4096)
def public_key(pem: str) -> Ed25519PublicKey:
    """A gateway's key, parsed once: its PEM text is the cache key, so a rotated key is a new entry."""
    return load_public_key(pem)


def parse_ts(text: str, field: str) -> datetime:
    """An ISO-8601 time with its offset (``Z`` as the gateway writes it) → naive UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise IngestError(422, "invalid_batch", f"not an ISO-8601 time: {text[:40]!r}", field) from exc
    if value.tzinfo is None:
        raise IngestError(422, "invalid_batch", f"a time needs its offset, e.g. 2026-10-01T00:15:00Z; got "
                          f"{text[:40]!r}", field)
    try:
        # 0001-01-01T00:00:00+05:00 is before year 1 in UTC, 9999-12-31T23:59:59-05:00 after 9999.
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError as exc:
        raise IngestError(422, "implausible_time", f"{text[:40]!r} is outside the calendar in UTC", field) from exc


def db_time(text: str, field: str) -> str:
    """``2026-10-01T00:15:00Z`` → ``2026-10-01 00:15:00.000000``, the form SQLAlchemy stores and compares."""
    if len(text) == 20 and text[10] == "T" and text[19] == "Z" and text[:4].isdigit():
        candidate = f"{text[:10]} {text[11:19]}.000000"
        if _TIME.fullmatch(candidate):
            return candidate
    return parse_ts(text, field).strftime("%Y-%m-%d %H:%M:%S.%f")


_KWH = re.compile(r"[0-9]{1,9}(\.[0-9]{1,3})?")  # ASCII digits only: \d also matches other scripts
_TIME = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.000000")


def kwh_to_wh(text: str, field: str) -> int:
    """A decimal kWh string to whole Wh; more than three decimals, a sign or a non-number is refused."""
    if not _KWH.fullmatch(text):
        raise IngestError(422, "invalid_batch", "kWh as a plain decimal with at most 3 decimals and 9 digits "
                          f"before the point, e.g. \"18.434\"; got {text[:40]!r}", field)
    whole, _, decimals = text.partition(".")  # exact: the pattern leaves at most 3 decimals
    return int(whole) * 1000 + int(decimals.ljust(3, "0"))


def batch_rows(document: dict, meters: dict[str, int],
               limits: IngestLimits = DEFAULT_LIMITS) -> tuple[list[tuple], list[tuple], list[dict]]:
    """The batch's rows as the database stores them (without their batch id); an error names the row."""
    readings, intervals = document["readings"], document["intervals"]
    created = parse_ts(document["created"], "created")
    limits.check_created(created, utcnow())
    window = limits.window(created, utcnow())
    if document.get("priority", "normal") not in PRIORITIES:
        raise IngestError(422, "invalid_batch", f"must be one of {', '.join(PRIORITIES)}", "priority")
    section = "readings"
    try:
        # A batch holds few distinct meters and instants: each is looked up and converted once; the loops
        # over rows run in C (map, zip), as this is done for every reading received.
        m, t, q = itemgetter("m"), itemgetter("t"), itemgetter("q")
        times = {value: db_time(value, "t") for value in set(map(t, readings)) | set(map(t, intervals))}
        if times and not (window[0] <= min(times.values()) and max(times.values()) <= window[1]):
            raise IngestError(422, "implausible_time", "a time is outside the window", "t")
        if not plausible_quantities(readings):
            raise IngestError(422, "invalid_batch", "a value is not a plain decimal", "q")
        reading_rows = list(zip(map(meters.__getitem__, map(m, readings)), map(times.__getitem__, map(t, readings)),
                                map(bytes.decode, map(orjson.dumps, map(q, readings))), strict=True))
        section = "intervals"
        imp, exp, f = itemgetter("imp"), itemgetter("exp"), itemgetter("f")
        # Each distinct kWh text once (a batch repeats many: every export of a house without solar is "0.000").
        wh = {text: _interval_wh(text, "imp", limits) for text in {*map(imp, intervals), *map(exp, intervals)}}
        interval_rows = list(zip(map(meters.__getitem__, map(m, intervals)), map(times.__getitem__, map(t, intervals)),
                                 map(wh.__getitem__, map(imp, intervals)), map(wh.__getitem__, map(exp, intervals)),
                                 map(f, intervals), strict=True))
        if not set(map(itemgetter(4), interval_rows)) <= set(INTERVAL_FLAGS):
            raise IngestError(422, "invalid_batch", "unknown flag", "f")
    except (KeyError, IngestError):
        _name_the_bad_row(document, section, meters, window, limits)
        raise
    events = []
    for i, e in enumerate(document["events"]):
        check_event(e, f"events[{i}]")
        ts = parse_ts(e["t"], f"events[{i}].t")
        check_row_time(ts.strftime(DB_TIME), window, f"events[{i}].t")
        events.append({"meter_id": _meter(meters, e["m"], f"events[{i}].m") if e.get("m") else None,
                       "ts": ts, "kind": e["kind"], "detail": e.get("detail") or {}})
    return reading_rows, interval_rows, events


def _interval_wh(text: str, field: str, limits: IngestLimits) -> int:
    wh = kwh_to_wh(text, field)
    check_interval_kwh(wh, limits, field)
    return wh


def _meter(meters: dict[str, int], code: str, field: str) -> int:
    found = meters.get(code)
    if found is None:
        raise IngestError(422, "unknown_meter", f"meter {code!r} is not registered at this site", field)
    return found


def _name_the_bad_row(document: dict, section: str, meters: dict[str, int], window: tuple[str, str],
                      limits: IngestLimits) -> None:
    """The slow path after a failure: check row by row so that the error names the row and the field."""
    for name in ("readings", "intervals") if section == "readings" else (section,):
        for i, row in enumerate(document[name]):
            _meter(meters, row["m"], f"{name}[{i}].m")
            check_row_time(db_time(row["t"], f"{name}[{i}].t"), window, f"{name}[{i}].t")
            if name == "readings":
                check_quantities(row["q"], f"{name}[{i}].q")
            else:
                _interval_wh(row["imp"], f"{name}[{i}].imp", limits)
                _interval_wh(row["exp"], f"{name}[{i}].exp", limits)
                if row["f"] not in INTERVAL_FLAGS:
                    raise IngestError(422, "invalid_batch", f"must be one of {', '.join(INTERVAL_FLAGS)}; got "
                                      f"{row['f'][:20]!r}", f"{name}[{i}].f")
