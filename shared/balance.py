"""Micro-balance of a transformer station (мікробаланс): input = Σ outputs + losses.

Per line: the feeder meter against the sum of its subscribers' meters; per station: the
input meter against the sum of line feeders (or of a line's subscribers where it has no
feeder meter). Missing data makes a balance ``incomplete`` — never theft.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from shared.site_document import MeterRole

KWH = Decimal("0.001")
PCT = Decimal("0.1")

NORMAL = "normal"
ELEVATED = "elevated"
SUSPECTED_THEFT = "suspected_theft"
INCOMPLETE = "incomplete"
STATUSES = (NORMAL, ELEVATED, SUSPECTED_THEFT, INCOMPLETE)


@dataclass(frozen=True)
class Thresholds:
    """Loss % at which a line is ``elevated`` and at which theft is suspected."""

    elevated_pct: Decimal = Decimal("3")
    theft_pct: Decimal = Decimal("10")

    def __post_init__(self) -> None:
        if not Decimal(0) <= self.elevated_pct <= self.theft_pct:
            raise ValueError(
                f"thresholds: need 0 ≤ elevated_pct ({self.elevated_pct}) ≤ theft_pct ({self.theft_pct})"
            )

    def status(self, loss_pct: Decimal) -> str:
        # A large negative loss (subscribers above the feeder) is a metering fault worth a look.
        if loss_pct >= self.theft_pct:
            return SUSPECTED_THEFT
        if loss_pct >= self.elevated_pct or loss_pct <= -self.elevated_pct:
            return ELEVATED
        return NORMAL


@dataclass(frozen=True)
class MeterEnergy:
    """Energy one meter counted over the span; export is what a solar subscriber (СЕС) fed back."""

    import_kwh: Decimal
    export_kwh: Decimal = Decimal(0)
    complete: bool = True
    estimated: bool = False

    @property
    def net_kwh(self) -> Decimal:
        return self.import_kwh - self.export_kwh


@dataclass(frozen=True)
class LineTopology:
    line: str
    feeder: str | None
    subscribers: tuple[str, ...]


@dataclass(frozen=True)
class StationTopology:
    input_meter: str | None
    lines: tuple[LineTopology, ...]

    def meters(self) -> list[str]:
        found = [self.input_meter] if self.input_meter else []
        for line in self.lines:
            if line.feeder:
                found.append(line.feeder)
            found.extend(line.subscribers)
        return found


def build_topology(meters: Iterable[tuple[str, str, str | None]], lines: Iterable[str]) -> StationTopology:
    """A station from (meter id, role, line) triples: the input meter, each line's feeder and subscribers."""
    inputs: list[str] = []
    feeders: dict[str | None, list[str]] = {}
    subscribers: dict[str | None, list[str]] = {}
    for meter, role, line in meters:  # one pass: a station has thousands of subscribers
        if role == MeterRole.STATION_INPUT:
            inputs.append(meter)
        elif role == MeterRole.FEEDER:
            feeders.setdefault(line, []).append(meter)
        elif role == MeterRole.SUBSCRIBER:
            subscribers.setdefault(line, []).append(meter)
    found = tuple(LineTopology(number, feeders[number][0] if number in feeders else None,
                               tuple(subscribers.get(number, ()))) for number in lines)
    return StationTopology(inputs[0] if inputs else None, found)


@dataclass(frozen=True)
class LineBalance:
    line: str
    feeder_kwh: Decimal | None
    subscribers_kwh: Decimal
    loss_kwh: Decimal | None
    loss_pct: Decimal | None
    status: str
    estimated: bool = False
    missing: tuple[str, ...] = ()

    def as_json(self) -> dict:
        return {
            "line": self.line,
            "feeder_kwh": _kwh(self.feeder_kwh),
            "subscribers_kwh": _kwh(self.subscribers_kwh),
            "loss_kwh": _kwh(self.loss_kwh),
            "loss_pct": _pct(self.loss_pct),
            "status": self.status,
            "estimated": self.estimated,
            "missing": list(self.missing),
        }


@dataclass(frozen=True)
class StationBalance:
    input_kwh: Decimal | None
    feeders_kwh: Decimal
    loss_kwh: Decimal | None
    loss_pct: Decimal | None
    status: str
    lines: tuple[LineBalance, ...] = field(default=())
    missing: tuple[str, ...] = ()

    def as_json(self) -> dict:
        return {
            "station": {
                "input_kwh": _kwh(self.input_kwh),
                "feeders_kwh": _kwh(self.feeders_kwh),
                "loss_kwh": _kwh(self.loss_kwh),
                "loss_pct": _pct(self.loss_pct),
                "status": self.status,
                "missing": list(self.missing),
            },
            "lines": [line.as_json() for line in self.lines],
        }


def loss_percent(loss_kwh: Decimal, input_kwh: Decimal) -> Decimal:
    """Loss as a share of what entered, one decimal, half up; 0 when nothing entered."""
    if input_kwh == 0:
        return Decimal("0.0")
    return (loss_kwh * 100 / input_kwh).quantize(PCT, ROUND_HALF_UP)


def line_balance(
    line: LineTopology, energies: Mapping[str, MeterEnergy], thresholds: Thresholds = Thresholds()
) -> LineBalance:
    """One line: feeder net flow against Σ subscribers' net consumption (import − export)."""
    missing = tuple(m for m in _line_meters(line) if m not in energies or not energies[m].complete)
    subscribers = sum((energies[m].net_kwh for m in line.subscribers if m in energies), Decimal(0))
    estimated = any(energies[m].estimated for m in _line_meters(line) if m in energies)
    if line.feeder is None:
        # Nothing measures what entered the line: its loss cannot be known, only its use.
        status = INCOMPLETE if missing else NORMAL
        return LineBalance(line.line, None, subscribers, None, None, status, estimated, missing)
    feeder = energies[line.feeder].net_kwh if line.feeder in energies else None
    if feeder is None:
        return LineBalance(line.line, None, subscribers, None, None, INCOMPLETE, estimated, missing)
    loss = feeder - subscribers
    pct = loss_percent(loss, feeder)
    status = INCOMPLETE if missing else thresholds.status(pct)
    return LineBalance(line.line, feeder, subscribers, loss, pct, status, estimated, missing)


def station_balance(
    topology: StationTopology,
    energies: Mapping[str, MeterEnergy],
    thresholds: Thresholds = Thresholds(),
) -> StationBalance:
    """The whole station: input meter against Σ line feeders, plus each line's balance."""
    lines = tuple(line_balance(line, energies, thresholds) for line in topology.lines)
    feeders = Decimal(0)
    missing: list[str] = []
    for line, result in zip(topology.lines, lines, strict=True):
        if line.feeder is not None:
            feeders += result.feeder_kwh if result.feeder_kwh is not None else Decimal(0)
            if line.feeder not in energies or not energies[line.feeder].complete:
                missing.append(line.feeder)
        else:
            feeders += result.subscribers_kwh
            missing.extend(result.missing)
    source = topology.input_meter
    if source is None or source not in energies:
        if source is not None:
            missing.append(source)
        return StationBalance(None, feeders, None, None, INCOMPLETE, lines, tuple(missing))
    if not energies[source].complete:
        missing.append(source)
    input_kwh = energies[source].net_kwh
    loss = input_kwh - feeders
    pct = loss_percent(loss, input_kwh)
    status = INCOMPLETE if missing else thresholds.status(pct)
    return StationBalance(input_kwh, feeders, loss, pct, status, lines, tuple(missing))


def _line_meters(line: LineTopology) -> tuple[str, ...]:
    return ((line.feeder,) if line.feeder else ()) + line.subscribers


def _kwh(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(KWH, ROUND_HALF_UP):f}"


def _pct(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.1f}"
