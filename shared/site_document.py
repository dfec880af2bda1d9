"""The site document: the station's lines and meters as a gateway declares them at enrolment.

One implementation for both sides: provisioning builds it from the gateway's configuration, the cloud parses
it and refuses anything malformed with the path of the field at fault (docs/site-document.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.calendar import as_utc, iso_utc, parse_iso

FORMAT_VERSION = 1
MAX_LINES = 200
MAX_METERS = 20_000  # a station has thousands of subscribers, not tens of thousands
# The cloud's column widths: a longer value would fail in the database instead of here.
SITE_CHARS, LINE_NUMBER_CHARS, LINE_NAME_CHARS = 50, 20, 200
METER_ID_CHARS, PROFILE_CHARS, ACCOUNT_CHARS = 60, 60, 30


class MeterRole(StrEnum):
    """What a meter measures at the site; the one list of roles, on the gateway and in the cloud."""

    STATION_INPUT = "station_input"  # the transformer's 0.4 kV input (ввід ТП)
    FEEDER = "feeder"  # the head of one 0.4 kV line (фідер)
    SUBSCRIBER = "subscriber"  # a subscriber's own meter: electricity, or a flat's heat meter
    HEAT_BUILDING = "heat_building"  # a building's heat meter (будинковий вузол обліку теплової енергії)


ROLES = tuple(MeterRole)
# The roles of a station's electricity balance, the ones a gateway reads over Modbus.
BALANCE_ROLES = (MeterRole.STATION_INPUT, MeterRole.FEEDER, MeterRole.SUBSCRIBER)
LINE_ROLES = (MeterRole.FEEDER, MeterRole.SUBSCRIBER)  # a meter of these roles belongs to one line


class SiteDocumentError(ValueError):
    """A site document that is malformed; ``field`` is the path of the value at fault, e.g. ``site.meters[3].role``."""

    def __init__(self, reason: str, field: str):
        super().__init__(f"{field}: {reason}")
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class LineSpec:
    """A 0.4 kV line leaving the station (лінія 0,4 кВ): its number and the name people know it by."""

    number: str
    name: str


@dataclass(frozen=True)
class MeterSpec:
    """One meter: its id (as in the batches), its role, its line, the account it bills (особовий рахунок)."""

    id: str
    role: MeterRole
    line: str | None = None
    account: str | None = None
    profile: str = ""  # the meter profile the gateway reads it with, e.g. eastron-sdm120


@dataclass(frozen=True)
class SiteDocument:
    """What a gateway declares about its station. ``site`` is the code in its configuration (the token, not
    this, decides the site); ``created`` is when it was built, an aware UTC instant to the second."""

    lines: tuple[LineSpec, ...]
    meters: tuple[MeterSpec, ...]
    site: str | None = None
    created: datetime | None = None


def build(*, site: str | None, lines: Mapping[str, str] | Iterable[LineSpec], meters: Iterable[MeterSpec],
          created: datetime | None = None, where: str = "site") -> SiteDocument:
    """A checked document for the sender; lines as ``{number: name}`` or specs. Raises :class:`SiteDocumentError`."""
    specs = tuple(LineSpec(n, name) for n, name in lines.items()) if isinstance(lines, Mapping) else tuple(lines)
    document = SiteDocument(
        lines=specs,
        meters=tuple(meters),
        site=site,
        created=as_utc(created).replace(microsecond=0) if created is not None else None,
    )
    check_document(document, where)
    return document


def to_json(document: SiteDocument) -> dict[str, Any]:
    """The document as the JSON object sent under ``"site"`` in ``POST /api/v1/enrol``."""
    return {
        "v": FORMAT_VERSION,
        "site": document.site,
        "created": iso_utc(document.created) if document.created is not None else None,
        "lines": [{"number": line.number, "name": line.name} for line in document.lines],
        "meters": [{"id": m.id, "role": str(m.role), "line": m.line, "account": m.account, "profile": m.profile}
                   for m in document.meters],
    }


def parse_site_document(obj: object, where: str = "site") -> SiteDocument:
    """The document a gateway sent (decoded JSON), every field checked; raises :class:`SiteDocumentError`."""
    _fields(obj, where, required=("lines", "meters"), optional=("v", "site", "created"))
    assert isinstance(obj, dict)
    version = obj.get("v", FORMAT_VERSION)
    if type(version) is not int:
        raise SiteDocumentError(f"must be the format version as a number, {FORMAT_VERSION}; got {version!r}",
                                f"{where}.v")
    if version != FORMAT_VERSION:
        raise SiteDocumentError(f"format version {version} is not known here (this cloud reads "
                                f"{FORMAT_VERSION}); update the cloud before the gateways", f"{where}.v")
    lines = _list(obj["lines"], f"{where}.lines", MAX_LINES)
    meters = _list(obj["meters"], f"{where}.meters", MAX_METERS)
    document = SiteDocument(
        lines=tuple(_line(spec, f"{where}.lines[{i}]") for i, spec in enumerate(lines)),
        meters=tuple(_meter(spec, f"{where}.meters[{i}]") for i, spec in enumerate(meters)),
        site=obj.get("site"),
        created=_instant(obj.get("created"), f"{where}.created"),
    )
    check_document(document, where)
    return document


def check_document(document: SiteDocument, where: str = "site") -> None:
    """Every value of a document in order, then how they fit together: unique ids, meters on declared lines."""
    _text(document.site, f"{where}.site", SITE_CHARS, optional=True)
    if len(document.lines) > MAX_LINES:
        raise SiteDocumentError(f"{len(document.lines)} lines, over the limit of {MAX_LINES}", f"{where}.lines")
    if len(document.meters) > MAX_METERS:
        raise SiteDocumentError(f"{len(document.meters)} meters, over the limit of {MAX_METERS}", f"{where}.meters")
    numbers: dict[str, int] = {}
    for i, line in enumerate(document.lines):
        path = f"{where}.lines[{i}]"
        _text(line.number, f"{path}.number", LINE_NUMBER_CHARS)
        _text(line.name, f"{path}.name", LINE_NAME_CHARS, empty=True)
        if line.number in numbers:
            raise SiteDocumentError(f"line {line.number!r} is declared twice (also {where}.lines"
                                    f"[{numbers[line.number]}])", f"{path}.number")
        numbers[line.number] = i
    ids: dict[str, int] = {}
    for i, meter in enumerate(document.meters):
        path = f"{where}.meters[{i}]"
        _text(meter.id, f"{path}.id", METER_ID_CHARS)
        if meter.id in ids:
            raise SiteDocumentError(f"meter {meter.id!r} is declared twice (also {where}.meters[{ids[meter.id]}])",
                                    f"{path}.id")
        ids[meter.id] = i
        if not isinstance(meter.role, MeterRole):
            raise SiteDocumentError(f"must be one of {', '.join(ROLES)}; got {_shown(meter.role)}", f"{path}.role")
        _text(meter.line, f"{path}.line", LINE_NUMBER_CHARS, optional=True)
        if meter.line is None and meter.role in LINE_ROLES:
            raise SiteDocumentError(f"a {meter.role} meter needs the number of its line", f"{path}.line")
        if meter.line is not None and meter.line not in numbers:
            known = ", ".join(repr(n) for n in numbers) or "none"
            raise SiteDocumentError(f"line {meter.line!r} is not among the document's lines ({known})",
                                    f"{path}.line")
        _text(meter.account, f"{path}.account", ACCOUNT_CHARS, optional=True)
        _text(meter.profile, f"{path}.profile", PROFILE_CHARS, empty=True)


def _fields(obj: object, path: str, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    if not isinstance(obj, dict):
        raise SiteDocumentError(f"must be an object with {', '.join(required)}; got {_shown(obj)}", path)
    for key in obj:
        if key not in required and key not in optional:
            raise SiteDocumentError(f"unknown field; known: {', '.join(required + optional)}", f"{path}.{key}")
    for key in required:
        if key not in obj:
            raise SiteDocumentError("is required", f"{path}.{key}")


def _list(value: object, path: str, limit: int) -> list:
    if not isinstance(value, list):
        raise SiteDocumentError(f"must be a list; got {_shown(value)}", path)
    if len(value) > limit:
        raise SiteDocumentError(f"{len(value)} entries, over the limit of {limit}", path)
    return value


def _line(spec: object, path: str) -> LineSpec:
    _fields(spec, path, required=("number",), optional=("name",))
    assert isinstance(spec, dict)
    name = spec.get("name")  # left out or null: the line is known by its number
    return LineSpec(number=spec["number"], name=spec["number"] if name is None else name)


def _meter(spec: object, path: str) -> MeterSpec:
    _fields(spec, path, required=("id", "role"), optional=("line", "account", "profile"))
    assert isinstance(spec, dict)
    role = spec["role"]
    return MeterSpec(
        id=spec["id"],
        role=MeterRole(role) if type(role) is str and role in ROLES else role,  # check_document names a wrong one
        line=spec.get("line"),
        account=spec.get("account"),
        profile="" if spec.get("profile") is None else spec["profile"],
    )


def _instant(value: object, path: str) -> datetime | None:
    if value is None:
        return None
    example = "2026-10-01T06:30:00Z"
    if type(value) is not str:
        raise SiteDocumentError(f"must be a UTC time as text, e.g. {example!r}; got {_shown(value)}", path)
    try:
        instant = parse_iso(value)
    except (ValueError, OverflowError):  # an offset that carries the time past year 1 or 9999 in UTC
        instant = None
    if instant is None or iso_utc(instant) != value:
        raise SiteDocumentError(f"must be a UTC time YYYY-MM-DDTHH:MM:SSZ, e.g. {example!r}; got {value!r}", path)
    return instant


def _text(value: object, path: str, limit: int, optional: bool = False, empty: bool = False) -> None:
    if value is None and optional:
        return
    if type(value) is not str:
        null = " or null" if optional else ""
        raise SiteDocumentError(f"must be text{null}; got {_shown(value)}"
                                + (f' (write it as "{value}")' if type(value) is int else ""), path)
    if not value and not empty:
        raise SiteDocumentError("must not be empty" + ("; leave it out or null" if optional else ""), path)
    if len(value) > limit:
        raise SiteDocumentError(f"is {len(value)} characters, over the limit of {limit}", path)


def _shown(value: object) -> str:
    """A received value as a person reads it in an error: its JSON kind, and the value when short."""
    kind = {dict: "an object", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text}" if len(text) <= 40 and not isinstance(value, dict | list) else kind
