"""Coalesce one meter's register reads into as few Modbus requests as the protocol allows.

Cost model (FACTS.md): a request costs ≈ (20 + 2N) characters on the wire plus the meter's
turnaround (5–60 ms), so reading through a gap of a few unused registers (2 characters
each) is far cheaper than another request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RegisterSpan:
    function: int
    address: int
    count: int
    key: str


@dataclass(frozen=True)
class ReadRequest:
    function: int
    address: int
    count: int
    spans: tuple[RegisterSpan, ...]


def plan_reads(
    spans: Iterable[RegisterSpan], *, max_count: int = 125, gap_cost_registers: int = 20
) -> list[ReadRequest]:
    """Group spans by function code and merge neighbours whose gap is ≤ ``gap_cost_registers``."""
    requests: list[ReadRequest] = []
    ordered = sorted(spans, key=lambda s: (s.function, s.address, s.count, s.key))
    for span in ordered:
        if span.count < 1 or span.count > max_count:
            raise ValueError(f"register {span.key}: count {span.count} outside 1..{max_count}")
    current: list[RegisterSpan] = []
    start = end = function = 0
    for span in ordered:
        if current:
            new_end = max(end, span.address + span.count)
            gap = span.address - end
            if span.function == function and gap <= gap_cost_registers and new_end - start <= max_count:
                current.append(span)
                end = new_end
                continue
            requests.append(ReadRequest(function, start, end - start, tuple(current)))
        current = [span]
        function, start, end = span.function, span.address, span.address + span.count
    if current:
        requests.append(ReadRequest(function, start, end - start, tuple(current)))
    return requests


def slice_words(request: ReadRequest, words: list[int]) -> dict[str, list[int]]:
    """Each span's registers out of one response."""
    if len(words) != request.count:
        raise ValueError(f"expected {request.count} registers, got {len(words)}")
    return {
        s.key: words[s.address - request.address : s.address - request.address + s.count] for s in request.spans
    }
