"""A station scenario: the meters of one transformer station and what they count in a period.

Read from TOML (format in docs/scenario.md; the seed's cottage town is
examples/seed-cottage-town.toml). The simulator serves it, the demo enrols and bills it,
and tests check the balance against it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from shared.balance import StationTopology, Thresholds, build_topology
from shared.calendar import period_bounds

SURNAMES = (
    "Іваненко", "Петренко", "Коваленко", "Шевченко", "Бондаренко", "Ткаченко", "Кравченко",
    "Олійник", "Мельник", "Ковальчук", "Поліщук", "Лисенко", "Руденко", "Савченко",
    "Марченко", "Мороз", "Гончаренко", "Литвиненко", "Кузьменко", "Дмитренко",
)
INITIALS = ("О. П.", "М. І.", "Т. В.", "А. С.", "Н. Г.", "В. М.", "Л. О.", "С. Д.", "І. Ю.", "Г. К.")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the key."""


@dataclass(frozen=True)
class SimMeter:
    """One simulated meter: its id (serial), Modbus unit id, profile and the period's energy."""

    meter: str
    unit: int
    profile: str
    role: str  # station_input | feeder | subscriber
    line: str | None
    monthly_kwh: int
    export_kwh: int = 0
    start_kwh: int = 0
    start_export_kwh: int = 0
    account: str | None = None
    holder: str | None = None
    address: str | None = None
    voltage: Decimal = Decimal("230")


@dataclass(frozen=True)
class Scenario:
    name: str
    period: str  # YYYY-MM
    site: str
    site_name: str
    organisation: dict[str, str]
    tariff: dict[str, str]
    meters: tuple[SimMeter, ...]
    line_names: dict[str, str] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def period_start(self) -> datetime:
        """The period's first instant: 00:00 of its first day in Kyiv, in UTC."""
        return period_bounds(self.period)[0]

    @property
    def period_end(self) -> datetime:
        return period_bounds(self.period)[1]

    def topology(self) -> StationTopology:
        return build_topology(((m.meter, m.role, m.line) for m in self.meters), self.line_names)

    def subscribers(self) -> list[SimMeter]:
        return [m for m in self.meters if m.role == "subscriber"]


def load_scenario(text: str, source: str = "scenario") -> Scenario:
    """Parse scenario TOML; errors name the file and the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from exc
    head = _table(data, "scenario", source)
    period = _str(head, "period", f"{source}: [scenario]")
    try:
        datetime.strptime(period, "%Y-%m")
    except ValueError as exc:
        raise ScenarioError(f"{source}: [scenario] period must be YYYY-MM, got {period!r}") from exc
    station = _table(data, "station", source)
    meters: list[SimMeter] = []
    next_unit = 1
    if "input" in station:
        meters.append(_meter(station["input"], "station_input", None, next_unit, f"{source}: [station].input"))
        next_unit += 1
    lines = data.get("lines")
    if not isinstance(lines, list) or not lines:
        raise ScenarioError(f"{source}: needs at least one [[lines]] table")
    line_names: dict[str, str] = {}
    for index, line in enumerate(lines):
        where = f"{source}: [[lines]] #{index + 1}"
        number = str(line.get("number", index + 1))
        if number in line_names:
            raise ScenarioError(f"{where}: line number {number} is used twice")
        line_names[number] = str(line.get("name", f"Лінія {number}"))
        if "feeder" in line:
            meters.append(_meter(line["feeder"], "feeder", number, next_unit, f"{where}.feeder"))
            next_unit += 1
        subscribers = _subscribers(line, number, where)
        for sub in subscribers:
            meters.append(_subscriber(sub, number, next_unit, where))
            next_unit += 1
    if next_unit - 1 > 247:
        raise ScenarioError(f"{source}: {next_unit - 1} meters; one Modbus server addresses at most 247")
    thresholds = data.get("thresholds", {})
    return Scenario(
        name=_str(head, "name", f"{source}: [scenario]"),
        period=period,
        site=str(station.get("id", "TP-1")),
        site_name=str(station.get("name", station.get("id", "ТП-1"))),
        organisation={k: str(v) for k, v in _table(data, "organisation", source).items()},
        tariff={k: str(v) for k, v in _table(data, "tariff", source).items()},
        meters=tuple(meters),
        line_names=line_names,
        thresholds=Thresholds(
            elevated_pct=Decimal(str(thresholds.get("elevated_pct", "3"))),
            theft_pct=Decimal(str(thresholds.get("theft_pct", "10"))),
        ),
    )


def _subscribers(line: dict, number: str, where: str) -> list[dict]:
    explicit = line.get("subscriber", [])
    generated = line.get("subscribers")
    if generated is None:
        if not explicit:
            raise ScenarioError(f"{where}: needs [[lines.subscriber]] entries or subscribers = {{count, monthly_kwh}}")
        return explicit
    count = _int(generated, "count", f"{where}.subscribers")
    total = _int(generated, "monthly_kwh", f"{where}.subscribers")
    if count < 1:
        raise ScenarioError(f"{where}.subscribers: count must be ≥ 1")
    street = str(generated.get("street", f"вул. Лінійна {number}"))
    return explicit + [
        {
            "account": f"{int(number):02d}{i + 1:03d}",
            "holder": f"{SURNAMES[(i * 7 + int(number)) % len(SURNAMES)]} {INITIALS[i % len(INITIALS)]}",
            "address": f"{street}, {i + 1}",
            "monthly_kwh": kwh,
        }
        for i, kwh in enumerate(spread(total, count, seed=int(number)))
    ]


def spread(total: int, count: int, seed: int = 0) -> list[int]:
    """Split ``total`` kWh over ``count`` houses unevenly but deterministically, summing exactly."""
    weights = [1.0 + 0.45 * math.sin(1.7 * i + seed) + 0.2 * math.cos(0.9 * i * seed) for i in range(count)]
    scale = total / sum(weights)
    raw = [w * scale for w in weights]
    parts = [int(x) for x in raw]
    # Largest remainder: hand the leftover kWh to the largest fractional parts.
    order = sorted(range(count), key=lambda i: raw[i] - parts[i], reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _meter(spec: dict, role: str, line: str | None, unit: int, where: str) -> SimMeter:
    if not isinstance(spec, dict):
        raise ScenarioError(f"{where}: must be a table {{ meter = …, monthly_kwh = … }}")
    return SimMeter(
        meter=_str(spec, "meter", where),
        unit=int(spec.get("unit", unit)),
        profile=str(spec.get("profile", "eastron-sdm630")),
        role=role,
        line=line,
        monthly_kwh=_int(spec, "monthly_kwh", where),
        export_kwh=int(spec.get("export_kwh", 0)),
        start_kwh=int(spec.get("start_kwh", 10_000 + 7919 * unit % 90_000)),
        voltage=Decimal(str(spec.get("voltage", "230"))),
    )


def _subscriber(spec: dict, line: str, unit: int, where: str) -> SimMeter:
    account = _str(spec, "account", where)
    return SimMeter(
        meter=str(spec.get("meter", f"M{account}")),
        unit=int(spec.get("unit", unit)),
        profile=str(spec.get("profile", "eastron-sdm120")),
        role="subscriber",
        line=line,
        monthly_kwh=_int(spec, "monthly_kwh", f"{where} subscriber {account}"),
        export_kwh=int(spec.get("export_kwh", 0)),
        start_kwh=int(spec.get("start_kwh", 1_000 + 7919 * unit % 30_000)),
        start_export_kwh=int(spec.get("start_export_kwh", 0)),
        account=account,
        holder=str(spec.get("holder", "")),
        address=str(spec.get("address", "")),
        voltage=Decimal(str(spec.get("voltage", "228"))),
    )


def _table(data: dict, key: str, source: str) -> dict:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ScenarioError(f"{source}: needs a [{key}] table")
    return value


def _str(table: dict, key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ScenarioError(f"{where}: {key} must be a non-empty string")
    return value


def _int(table: dict, key: str, where: str) -> int:
    value = table.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ScenarioError(f"{where}: {key} must be a whole number ≥ 0, got {value!r}")
    return value
