"""A free TCP port on loopback, for the demo's cloud and simulated station, the tests and the benchmarks."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it; another process could take it before we bind)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
