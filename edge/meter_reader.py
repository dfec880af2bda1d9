"""The seam between the gateway and its meters' protocols: a bus reads the quantities a meter's profile asks
for and says when a meter did not answer. The gateway's coordination, storage, balances and batches see only
this; Modbus (RTU and TCP), IEC 62056-21 mode C, M-Bus and DLMS/COSEM are the implementations, chosen per bus by its ``kind``."""

from __future__ import annotations

from typing import Protocol

from edge.config import BusConfig, MeterConfig
from edge.dlms_bus import DlmsBus
from edge.iec62056_bus import Iec62056Bus
from edge.mbus_bus import MbusBus
from edge.modbus_bus import MeterUnavailable, ModbusBus
from shared.profiles import MeterProfile

__all__ = ["BusReader", "MeterUnavailable", "open_bus"]


class BusReader(Protocol):
    """One bus and the meters on it, read one transaction at a time."""

    async def read(self, meter: MeterConfig, meanings: tuple[str, ...] | None = None) -> dict[str, str]:
        """{meaning: decimal string} for the meter's registers; MeterUnavailable when it does not answer."""

    def close(self) -> None:
        """Let go of the port or the connection (reopened on the next read)."""


# A bus's kind in the configuration → the reader that speaks its protocol.
READERS: dict[str, type] = {"rtu": ModbusBus, "tcp": ModbusBus, "iec62056-21": Iec62056Bus, "mbus": MbusBus,
                           "dlms": DlmsBus}


def open_bus(config: BusConfig, profiles: dict[str, MeterProfile]) -> BusReader:
    """The reader for a configured bus; the configuration has already refused an unknown kind."""
    return READERS[config.kind](config, profiles)
