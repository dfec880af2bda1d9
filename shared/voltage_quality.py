"""Voltage quality per EN 50160 (low voltage, Un = 230 V): 10-minute means, weekly compliance, and
events for over-voltage, under-voltage and interruptions with their start, end and extreme value.

Polled meter readings support the 10-minute statistics, not dip detection in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.calendar import iso_utc

UN = 230.0
WINDOW = timedelta(minutes=10)
SHORT_INTERRUPTION = timedelta(minutes=3)


@dataclass(frozen=True)
class Limits:
    un: float = UN
    band_pct: float = 10.0  # 95 % of 10-minute means within Un ± 10 %
    upper_pct: float = 10.0  # all means at most Un + 10 %
    lower_pct: float = 15.0  # all means at least Un − 15 %
    interruption_pct: float = 5.0  # below 5 % of Un: no supply

    @property
    def high(self) -> float:
        return self.un * (1 + self.band_pct / 100)

    @property
    def low(self) -> float:
        return self.un * (1 - self.band_pct / 100)


@dataclass(frozen=True)
class VoltageEvent:
    kind: str  # over_voltage | under_voltage | interruption_short | interruption_long
    start: datetime
    end: datetime
    extreme: float

    def as_json(self) -> dict:
        return {"kind": self.kind, "start": iso_utc(self.start), "end": iso_utc(self.end),
                "extreme_v": f"{self.extreme:.1f}"}


def ten_minute_means(samples: Iterable[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    """Mean of the samples in each 10-minute window (aligned to the hour); windows without samples are absent."""
    sums: dict[datetime, list[float]] = {}
    for ts, volts in samples:
        start = ts.replace(minute=ts.minute - ts.minute % 10, second=0, microsecond=0)
        entry = sums.setdefault(start, [0.0, 0])
        entry[0] += volts
        entry[1] += 1
    return [(start, total / count) for start, (total, count) in sorted(sums.items())]


@dataclass(frozen=True)
class Compliance:
    means: int
    expected: int
    within_band_pct: float
    minimum: float | None
    maximum: float | None
    all_within_limits: bool
    compliant: bool

    def as_json(self) -> dict:
        return {"means": self.means, "expected": self.expected, "within_band_pct": round(self.within_band_pct, 2),
                "min_v": None if self.minimum is None else round(self.minimum, 1),
                "max_v": None if self.maximum is None else round(self.maximum, 1),
                "all_within_limits": self.all_within_limits, "compliant": self.compliant}


WEEK_WINDOWS = 7 * 24 * 6  # 10-minute windows in a week of seven 24-hour days


def weekly_compliance(means: list[tuple[datetime, float]], limits: Limits = Limits(),
                      expected: int = WEEK_WINDOWS) -> Compliance:
    """EN 50160 over a week of 10-minute means: ≥ 95 % within Un ± 10 % and all within +10 % / −15 %.
    ``expected``: the week's windows (1 002 or 1 014 in a Kyiv week when the clocks change)."""
    values = [value for _, value in means]
    if not values:
        return Compliance(0, expected, 0.0, None, None, False, False)
    within = sum(limits.low <= v <= limits.high for v in values) * 100 / len(values)
    upper = limits.un * (1 + limits.upper_pct / 100)
    lower = limits.un * (1 - limits.lower_pct / 100)
    all_within = all(lower <= v <= upper for v in values)
    return Compliance(len(values), expected, within, min(values), max(values), all_within,
                      within >= 95.0 and all_within)


@dataclass
class VoltageTracker:
    """Follows one phase sample by sample; returns each out-of-band episode once it has ended."""

    limits: Limits = field(default_factory=Limits)
    _kind: str | None = None
    _start: datetime | None = None
    _extreme: float = 0.0

    def classify(self, volts: float) -> str | None:
        if volts < self.limits.un * self.limits.interruption_pct / 100:
            return "interruption"
        if volts > self.limits.high:
            return "over_voltage"
        if volts < self.limits.low:
            return "under_voltage"
        return None

    def observe(self, ts: datetime, volts: float) -> list[VoltageEvent]:
        kind = self.classify(volts)
        closed: list[VoltageEvent] = []
        if kind != self._kind and self._kind is not None:
            closed.append(self._close(ts))
        if kind is not None:
            if kind != self._kind:
                self._kind, self._start, self._extreme = kind, ts, volts
            elif (kind == "over_voltage" and volts > self._extreme) or (kind != "over_voltage" and volts < self._extreme):
                self._extreme = volts
        else:
            self._kind = None
        return closed

    def state(self) -> str:
        """The open episode as text to keep across a restart ("" when none is open)."""
        if self._kind is None:
            return ""
        return f"{self._kind}|{self._start.isoformat()}|{self._extreme!r}"

    @classmethod
    def restore(cls, state: str | None, limits: Limits | None = None) -> VoltageTracker:
        tracker = cls(limits or Limits())
        if state:
            kind, start, extreme = state.split("|")
            tracker._kind, tracker._start, tracker._extreme = kind, datetime.fromisoformat(start), float(extreme)
        return tracker

    def _close(self, end: datetime) -> VoltageEvent:
        kind = self._kind
        if kind == "interruption":
            kind = "interruption_short" if end - self._start <= SHORT_INTERRUPTION else "interruption_long"
        event = VoltageEvent(kind, self._start, end, self._extreme)
        self._kind = None
        return event
