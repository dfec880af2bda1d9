"""Cloud ↔ gateway messages after enrolment (docs/remote.md): the gateway's signed posts (heartbeat, request
results, configuration fetches) and the site configuration the organisation signs.

Both directions sign canonical JSON (``shared.batch.canonical_bytes``) with Ed25519, detached: the gateway with
its own key (header ``X-Balans-Signature``), the cloud with the organisation's key (``signature`` beside the
document's bytes).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from shared.batch import BatchError, canonical_bytes
from shared.site_document import LINE_ROLES, ROLES

MESSAGE_VERSION = 1
CONFIG_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024
REQUEST_KINDS = ("log", "reread")
MAX_LOG_LINES = 500
# What a site configuration may hold of a meter (the rest of a [[meter]] — a password, a timeout — stays local).
METER_KEYS = {"id": str, "bus": str, "unit": int, "profile": str, "role": str, "line": str, "account": str,
              "channel": int, "retries": int, "address": str, "max_kw": str}
THRESHOLD_KEYS = ("elevated_pct", "theft_pct")
# What the organisation's key signs when it vouches for the release channel's root in a heartbeat answer
# (docs/updates.md): these bytes, then the root's. A site configuration is signed without them, so neither signature
# can pass for the other.
RELEASE_ROOT_CONTEXT = b"balans release channel root v1\n"


class RemoteError(ValueError):
    """A message or configuration that is malformed; ``field`` names where."""

    def __init__(self, reason: str, field: str = ""):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason, self.field = reason, field


def parse_message(body: bytes) -> dict[str, Any]:
    """A gateway's signed message: canonical JSON object with ``v``, ``gateway`` and ``sent``."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise RemoteError(f"over {MAX_MESSAGE_BYTES} bytes", "body")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RemoteError(f"not UTF-8 JSON ({exc})", "body") from exc
    if not isinstance(document, dict):
        raise RemoteError("must be a JSON object", "body")
    try:
        if canonical_bytes(document) != body:
            raise RemoteError("not in canonical form (sorted keys, no spaces, UTF-8)", "body")
    except BatchError as exc:
        raise RemoteError(exc.reason, exc.field or "body") from exc
    if document.get("v") != MESSAGE_VERSION:
        raise RemoteError(f"must be {MESSAGE_VERSION}", "v")
    for key in ("gateway", "sent"):
        if not isinstance(document.get(key), str):
            raise RemoteError("is required (a string)", key)
    return document


def config_body(document: dict[str, Any]) -> bytes:
    """The exact bytes the organisation signs (after checking the document)."""
    check_config(document)
    return canonical_bytes(document)


def check_config(document: Any) -> dict[str, Any]:
    """A site configuration document (docs/remote.md); the error names the field that is wrong."""
    if not isinstance(document, dict):
        raise RemoteError("must be a JSON object", "config")
    if document.get("v") != CONFIG_VERSION:
        raise RemoteError(f"must be {CONFIG_VERSION}", "v")
    for key, kind in (("site", str), ("version", int), ("created", str), ("poll_seconds", int),
                      ("thresholds", dict), ("lines", dict), ("meters", list)):
        if not isinstance(document.get(key), kind) or isinstance(document.get(key), bool):
            raise RemoteError(f"is required ({kind.__name__})", key)
    if not 1 <= document["poll_seconds"] <= 86_400:
        raise RemoteError("must be 1 … 86400", "poll_seconds")
    for key, value in document["thresholds"].items():
        if key not in THRESHOLD_KEYS:
            raise RemoteError(f"unknown; known: {', '.join(THRESHOLD_KEYS)}", f"thresholds.{key}")
        _decimal(value, f"thresholds.{key}")
    for number, name in document["lines"].items():
        if not isinstance(name, str):
            raise RemoteError("must be a string", f"lines.{number}")
    ids = set()
    for index, meter in enumerate(document["meters"]):
        where = f"meters[{index}]"
        if not isinstance(meter, dict):
            raise RemoteError("must be an object", where)
        for key, value in meter.items():
            kind = METER_KEYS.get(key)
            if kind is None:
                raise RemoteError(f"unknown; known: {', '.join(METER_KEYS)}", f"{where}.{key}")
            if not isinstance(value, kind) or isinstance(value, bool):
                raise RemoteError(f"must be {kind.__name__}", f"{where}.{key}")
        for key in ("id", "bus", "unit", "profile", "role"):
            if key not in meter:
                raise RemoteError("is required", f"{where}.{key}")
        if meter["role"] not in ROLES:
            raise RemoteError(f"must be one of {', '.join(ROLES)}", f"{where}.role")
        if meter["role"] in LINE_ROLES and meter.get("line") not in document["lines"]:
            raise RemoteError("must be one of the lines", f"{where}.line")
        if not 1 <= meter["unit"] <= 250:
            raise RemoteError("must be 1 … 250", f"{where}.unit")
        if "max_kw" in meter:
            _decimal(meter["max_kw"], f"{where}.max_kw")
        if meter["id"] in ids:
            raise RemoteError("is used twice", f"{where}.id")
        ids.add(meter["id"])
    return document


def _decimal(value: Any, field: str) -> Decimal:
    try:
        number = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number < 0:
        raise RemoteError("must be a non-negative decimal string", field)
    return number


def set_values(document: dict[str, Any], changes: dict[str, str]) -> dict[str, Any]:
    """A copy of ``document`` with ``key=value`` changes: ``poll_seconds``, ``thresholds.theft_pct``,
    ``line.N.name``, ``meter.ID.unit`` (any key of METER_KEYS). The error names the key."""
    new = orjson.loads(orjson.dumps(document))
    meters = {m["id"]: m for m in new["meters"]}
    for key, value in changes.items():
        parts = key.split(".")
        if key == "poll_seconds":
            new["poll_seconds"] = _int(value, key)
        elif parts[0] == "thresholds" and len(parts) == 2 and parts[1] in THRESHOLD_KEYS:
            _decimal(value, key)
            new["thresholds"][parts[1]] = value
        elif parts[0] == "line" and len(parts) == 3 and parts[2] == "name":
            new["lines"][parts[1]] = value
        elif parts[0] == "meter" and len(parts) >= 3 and ".".join(parts[2:]) in METER_KEYS:
            meter_id, field = ".".join(parts[1:-1]), parts[-1]
            if meter_id not in meters:
                raise RemoteError(f"no meter {meter_id!r} in the configuration", key)
            if field == "id":
                raise RemoteError("a meter's id cannot be changed", key)
            meters[meter_id][field] = _int(value, key) if METER_KEYS[field] is int else value
        else:
            raise RemoteError("unknown key; use poll_seconds, thresholds.elevated_pct, thresholds.theft_pct, "
                              "line.N.name or meter.ID.<field>", key)
    return new


def _int(value: str, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise RemoteError("must be a whole number", field) from exc
