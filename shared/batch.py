"""The batch format: canonical bytes, Ed25519 signature and hash chain, shared by edge and cloud.

A batch is what a gateway proves it sent. The exact bytes are signed (detached signature),
stored by both sides and can be checked years later with standard tools (docs/batch-format.md).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64
MAX_BATCH_BYTES = 4 * 1024 * 1024  # canonical bytes, before gzip
MAX_ROWS = 20_000  # readings + intervals + events in one batch
SECTIONS = ("readings", "intervals", "events")


class BatchError(ValueError):
    """A batch that is malformed, forged, altered or out of chain; ``field`` says where."""

    def __init__(self, reason: str, field: str = "", code: str = "invalid_batch"):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field
        self.code = code


MAX_SEQ = 2**31 - 1  # the cloud stores seq as a 32-bit integer: 60 000 years of a batch every 15 minutes


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """UTF-8 JSON with sorted keys, no spaces, no floats: the one encoding that is signed."""
    _refuse_floats(document, "")
    return _encode(document)


def _encode(document: dict[str, Any]) -> bytes:
    # orjson with sorted keys gives the same bytes as json.dumps(sort_keys=True, separators=(",", ":"),
    # ensure_ascii=False) for our documents (strings, ints, lists, objects), ten times faster.
    try:
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise BatchError(f"cannot encode: {exc}", "body") from exc


def _refuse_floats(value: Any, path: str) -> None:
    # Floats have several textual forms; numbers in a batch are decimal strings or ints.
    if isinstance(value, float):
        raise BatchError("floats are not allowed; write the number as a decimal string", path)
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_floats(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_floats(item, f"{path}[{index}]")


def batch_hash(body: bytes) -> str:
    """SHA-256 of the canonical bytes, hex: the link the next batch points to with ``prev``."""
    return hashlib.sha256(body).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, field: str = "signature") -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise BatchError("not valid base64", field) from exc


@dataclass(frozen=True)
class SealedBatch:
    """A signed batch as stored and sent: exact bytes, detached signature, its hash."""

    gateway: str
    seq: int
    prev: str
    body: bytes
    signature: bytes

    @property
    def hash(self) -> str:
        return batch_hash(self.body)

    def document(self) -> dict[str, Any]:
        return orjson.loads(self.body)


def seal_batch(
    key: Ed25519PrivateKey,
    *,
    gateway: str,
    seq: int,
    prev: str,
    created: str,
    readings: list[dict[str, Any]] | None = None,
    intervals: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
    priority: str = "normal",
    config_version: int | None = None,
) -> SealedBatch:
    """Build the canonical document, sign its bytes, and return the sealed batch. ``config_version``: the site
    configuration version in force when it was sealed (docs/remote.md), carried as ``config``."""
    document = {
        "v": FORMAT_VERSION,
        "gateway": gateway,
        "seq": seq,
        "prev": prev,
        "created": created,
        "priority": priority,
        "readings": readings or [],
        "intervals": intervals or [],
        "events": events or [],
    }
    if config_version is not None:
        document["config"] = config_version
    body = canonical_bytes(document)
    if len(body) > MAX_BATCH_BYTES:
        raise BatchError(f"batch is {len(body)} bytes, over the {MAX_BATCH_BYTES} limit", "body")
    return SealedBatch(gateway=gateway, seq=seq, prev=prev, body=body, signature=key.sign(body))


def verify_signature(public_key: Ed25519PublicKey, body: bytes, signature: bytes) -> None:
    try:
        public_key.verify(signature, body)
    except InvalidSignature as exc:
        raise BatchError("signature does not match the gateway's key", "signature", "bad_signature") from exc


def parse_batch(body: bytes) -> dict[str, Any]:
    """Parse and validate received bytes; the error names the field that is wrong."""
    if len(body) > MAX_BATCH_BYTES:
        raise BatchError(f"batch is {len(body)} bytes, over the {MAX_BATCH_BYTES} limit", "body", "too_large")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BatchError(f"not UTF-8 JSON ({exc})", "body") from exc
    if not isinstance(document, dict):
        raise BatchError("must be a JSON object", "body")
    # One document, one byte form: no duplicate keys, no reordering, nothing a second parser could read otherwise.
    try:
        canonical = _encode(document)
    except BatchError:
        canonical = None
    if canonical != body:
        raise BatchError("not in canonical form (sorted keys, no spaces, UTF-8)", "body")
    _require(document, "v", int)
    if document["v"] != FORMAT_VERSION:
        raise BatchError(f"unsupported format version {document['v']}", "v")
    _require(document, "gateway", str)
    _require(document, "seq", int)
    if not 1 <= document["seq"] <= MAX_SEQ:
        raise BatchError(f"must be 1 … {MAX_SEQ}", "seq")
    _require(document, "prev", str)
    if len(document["prev"]) != 64:
        raise BatchError("must be 64 hex characters", "prev")
    _require(document, "created", str)
    if "config" in document and (type(document["config"]) is not int or not 0 <= document["config"] <= MAX_SEQ):
        raise BatchError(f"must be a whole number 0 … {MAX_SEQ} (the site configuration version in force)", "config")
    rows = 0
    for section in SECTIONS:
        _require(document, section, list)
        rows += len(document[section])
    if rows > MAX_ROWS:
        raise BatchError(f"{rows} rows, over the {MAX_ROWS} limit", "readings")
    # This runs for every row received: the common case is checked column by column in C loops (map, set),
    # and only a batch that fails it is walked row by row, to name the field that is wrong.
    readings = document["readings"]
    if not _typed(readings, READING_FIELDS) or not _typed_values(map(_QUANTITIES, readings)):
        for index, row in enumerate(readings):
            _row(row, f"readings[{index}]", READING_FIELDS)
            for meaning, value in row["q"].items():
                if type(value) is not str:
                    raise BatchError("must be a decimal string", f"readings[{index}].q.{meaning}")
    if not _typed(document["intervals"], INTERVAL_FIELDS):
        for index, row in enumerate(document["intervals"]):
            _row(row, f"intervals[{index}]", INTERVAL_FIELDS)
    for index, row in enumerate(document["events"]):
        _row(row, f"events[{index}]", EVENT_FIELDS)
    return document


def _typed(rows: list, fields: dict[str, type]) -> bool:
    """Every row an object holding every field with its type (True also for no rows)."""
    if not set(map(type, rows)) <= {dict}:
        return False
    try:
        return all(set(map(type, map(itemgetter(name), rows))) <= {kind} for name, kind in fields.items())
    except KeyError:
        return False


def _typed_values(objects: Iterator[dict]) -> bool:
    """Every value of every object a string."""
    return set(map(type, chain.from_iterable(map(dict.values, objects)))) <= {str}


def _require(document: dict[str, Any], key: str, kind: type) -> None:
    if key not in document:
        raise BatchError("is missing", key)
    # bool is an int in Python; a batch never means a boolean where a number is due.
    if not isinstance(document[key], kind) or (kind is int and isinstance(document[key], bool)):
        raise BatchError(f"must be {kind.__name__}", key)


READING_FIELDS = {"m": str, "t": str, "q": dict}
_QUANTITIES = itemgetter("q")
INTERVAL_FIELDS = {"m": str, "t": str, "imp": str, "exp": str, "f": str}
EVENT_FIELDS = {"t": str, "kind": str}


def _row(row: Any, path: str, fields: dict[str, type]) -> None:
    if type(row) is not dict:
        raise BatchError("must be an object", path)
    for name, kind in fields.items():
        value = row.get(name)
        if type(value) is not kind:
            raise BatchError("is missing" if value is None else f"must be {kind.__name__}", f"{path}.{name}")


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise BatchError("not a PEM public key", "public_key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise BatchError("must be an Ed25519 key", "public_key")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise BatchError("must be an Ed25519 key", "private_key")
    return key
