"""A batch's rows checked and converted to what the database stores: the signature, the canonical parse, and
every reading, interval and event named by its place when it is wrong. Pure of the database."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from operator import itemgetter

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloud.ingest.errors import IngestError
from shared.batch import BatchError, batch_hash, load_public_key, parse_batch, verify_signature


def verified_rows(public_key_pem: str, gateway_code: str, body: bytes, signature: bytes, meters: dict[str, int],
                  refusal_event: dict | None = None) -> tuple:
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
    readings, intervals, events = batch_rows(document, meters)
    return document["seq"], document["prev"], batch_hash(body), readings, intervals, events


@lru_cache(maxsize=4096)
def public_key(pem: str) -> Ed25519PublicKey:
    """A gateway's key, parsed once: its PEM text is the cache key, so a rotated key is a new entry."""
    return load_public_key(pem)


def parse_ts(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise IngestError(422, "invalid_batch", f"not an ISO-8601 time: {text!r}", field) from exc
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _decimal(text: str, field: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise IngestError(422, "invalid_batch", f"not a decimal number: {text!r}", field) from exc
    if not value.is_finite() or value < 0:
        raise IngestError(422, "invalid_batch", f"must be a finite number ≥ 0: {text!r}", field)
    return value


def db_time(text: str, field: str) -> str:
    """``2026-10-01T00:15:00Z`` → ``2026-10-01 00:15:00.000000``, the form SQLAlchemy stores and compares."""
    if len(text) == 20 and text[10] == "T" and text[19] == "Z" and text[:4].isdigit():
        candidate = f"{text[:10]} {text[11:19]}.000000"
        if _TIME.fullmatch(candidate):
            return candidate
    return parse_ts(text, field).strftime("%Y-%m-%d %H:%M:%S.%f")


_TIME = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.000000")


def kwh_to_wh(text: str, field: str) -> int:
    """A decimal kWh string to whole Wh; more than three decimals, a sign or a non-number is refused."""
    value = _decimal(text, field) * 1000
    if value != value.to_integral_value():
        raise IngestError(422, "invalid_batch", f"kWh has more than 3 decimals: {text!r}", field)
    return int(value)


def batch_rows(document: dict, meters: dict[str, int]) -> tuple[list[tuple], list[tuple], list[dict]]:
    """The batch's rows as the database stores them (without their batch id); an error names the row."""
    readings, intervals = document["readings"], document["intervals"]
    section = "readings"
    try:
        # A batch holds few distinct meters and instants: each is looked up and converted once; the loops
        # over rows run in C (map, zip), as this is done for every reading received.
        m, t, q = itemgetter("m"), itemgetter("t"), itemgetter("q")
        times = {value: db_time(value, "t") for value in set(map(t, readings)) | set(map(t, intervals))}
        reading_rows = list(zip(map(meters.__getitem__, map(m, readings)), map(times.__getitem__, map(t, readings)),
                                map(bytes.decode, map(orjson.dumps, map(q, readings))), strict=True))
        section = "intervals"
        interval_rows = [(meters[r["m"]], times[r["t"]], kwh_to_wh(r["imp"], "imp"), kwh_to_wh(r["exp"], "exp"),
                          r["f"][:12]) for r in intervals]
    except (KeyError, IngestError):
        _name_the_bad_row(document, section, meters)
        raise
    events = [
        {"meter_id": _meter(meters, e["m"], f"events[{i}].m") if e.get("m") else None,
         "ts": parse_ts(e["t"], f"events[{i}].t"), "kind": e["kind"][:40], "detail": e.get("detail") or {}}
        for i, e in enumerate(document["events"])
    ]
    return reading_rows, interval_rows, events


def _meter(meters: dict[str, int], code: str, field: str) -> int:
    found = meters.get(code)
    if found is None:
        raise IngestError(422, "unknown_meter", f"meter {code!r} is not registered at this site", field)
    return found


def _name_the_bad_row(document: dict, section: str, meters: dict[str, int]) -> None:
    """The slow path after a failure: check row by row so that the error names the row and the field."""
    for i, row in enumerate(document[section]):
        _meter(meters, row["m"], f"{section}[{i}].m")
        db_time(row["t"], f"{section}[{i}].t")
        if section == "intervals":
            kwh_to_wh(row["imp"], f"{section}[{i}].imp")
            kwh_to_wh(row["exp"], f"{section}[{i}].exp")
