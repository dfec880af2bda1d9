"""The installer's bus scan: find every meter that answers on an RS-485 line or a TCP subnet (Modbus), on an
IEC 62056-21 line or optical head, and on an M-Bus line, and name its profile by probing what the profiles list.

Bounded in time: a silent unit id costs one probe timeout, TCP hosts are probed concurrently (asyncio), and
the whole scan stops at its budget with what it has found. The protocol layers are the gateway's own
(``edge.modbus_bus``, ``edge.iec62056_bus``, ``edge.mbus_bus``): a meter the scan identifies is read the same way
by the gateway afterwards. An IEC 62056-21 meter is found by its sign-on (its identification names maker and model),
an M-Bus meter by SND_NKE at its primary address; then each profile of the protocol reads it and the best fit wins.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation

from pymodbus.exceptions import ModbusException

from edge.config import DLMS_TIMEOUT, IEC_TIMEOUT, MBUS_TIMEOUT, BusConfig, MeterConfig
from edge.dlms_bus import DlmsBus, DlmsSilence
from edge.iec62056_bus import Iec62056Bus
from edge.mbus_bus import MbusBus
from edge.meter_reader import BusReader
from edge.modbus_bus import MeterUnavailable, ModbusBus
from shared.profiles import MeterProfile

# Plausible readings of a live low-voltage meter (EN 50160: 230 V ± 10 %; a wide margin for identification).
VOLTAGE_RANGE = (Decimal("100"), Decimal("300"))
FREQUENCY_RANGE = (Decimal("45"), Decimal("55"))
COUNTER_MAX = Decimal("1e9")  # kWh; beyond that the register is not a counter (float garbage from a wrong map)


@dataclass(frozen=True)
class FoundMeter:
    """One answering unit (on a multi-input node, one input) and what it was identified as."""

    bus: str
    unit: int
    profile: str | None  # None: the unit answers, but no profile's registers make sense
    phases: int = 1
    channel: int = 0
    serial: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    address: str = ""  # IEC 62056-21: the address it answered its sign-on at ("": alone on the line)
    identity: str = ""  # what it says it is: an IEC identification, an M-Bus secondary address and maker

    @property
    def import_kwh(self) -> Decimal:
        try:
            return Decimal(self.values.get("import_kwh", "0"))
        except InvalidOperation:
            return Decimal(0)


@dataclass
class ScanResult:
    buses: list[BusConfig] = field(default_factory=list)
    meters: list[FoundMeter] = field(default_factory=list)
    probed: int = 0
    planned: int = 0
    silent: int = 0
    elapsed_s: float = 0.0
    budget_s: float = 0.0
    complete: bool = True  # False: the budget ran out before every unit was asked

    def as_json(self) -> dict:
        return {"buses": [_bus_json(b) for b in self.buses], "meters": [asdict(m) for m in self.meters],
                "probed": self.probed, "planned": self.planned, "silent": self.silent,
                "elapsed_s": round(self.elapsed_s, 2), "budget_s": self.budget_s, "complete": self.complete}


def _bus_json(bus: BusConfig) -> dict:
    if bus.kind == "tcp":
        return {"name": bus.name, "kind": "tcp", "host": bus.host, "port": bus.port}
    return {"name": bus.name, "kind": bus.kind, "device": bus.device, "baudrate": bus.baudrate,
            "parity": bus.parity, "stopbits": bus.stopbits}


def parse_units(text: str, highest: int = 247, option: str = "--units") -> list[int]:
    """``1-32`` or ``1,5,10-12`` → unit ids (Modbus addresses 1..247; M-Bus primary addresses 1..250)."""
    units: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError as exc:
            raise ValueError(f"{option}: {part!r} is not a unit id or a range like 1-32") from exc
        if not 1 <= first <= last <= highest:
            raise ValueError(f"{option}: {part!r} must lie within 1..{highest}, low to high")
        units.extend(u for u in range(first, last + 1) if u not in units)
    if not units:
        raise ValueError(f"{option}: give at least one unit id, e.g. 1-32")
    return units


def parse_hosts(specs: Iterable[str]) -> list[str]:
    """Subnets (``192.168.1.0/28``: its hosts) and single addresses or names, in order, each once."""
    hosts: list[str] = []
    for spec in specs:
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            if "/" in part:
                try:
                    network = ipaddress.ip_network(part, strict=False)
                except ValueError as exc:
                    raise ValueError(f"--tcp: {part!r} is not a subnet like 192.168.1.0/28") from exc
                if network.num_addresses > 4096:
                    raise ValueError(f"--tcp: {part} has {network.num_addresses} addresses; scan at most a /20")
                found = [str(h) for h in network.hosts()] or [str(network.network_address)]
            else:
                found = [part]
            hosts.extend(h for h in found if h not in hosts)
    return hosts


def implausible(meaning: str, value: str) -> str | None:
    """Why a decoded value cannot come from a live meter, or None when it can (0 is allowed: not wired)."""
    try:
        number = Decimal(value)
    except InvalidOperation:
        return f"{meaning} = {value!r} is not a number"
    if meaning.startswith("voltage_l") and number != 0 and not VOLTAGE_RANGE[0] <= number <= VOLTAGE_RANGE[1]:
        return f"{meaning} = {value} V is outside {VOLTAGE_RANGE[0]}–{VOLTAGE_RANGE[1]} V"
    if meaning == "frequency_hz" and number != 0 and not FREQUENCY_RANGE[0] <= number <= FREQUENCY_RANGE[1]:
        return f"{meaning} = {value} Hz is outside {FREQUENCY_RANGE[0]}–{FREQUENCY_RANGE[1]} Hz"
    if meaning.endswith("_kwh") or meaning.startswith("import_kwh"):
        if number < 0:
            return f"{meaning} = {value} kWh is negative"
        if number > COUNTER_MAX:
            return f"{meaning} = {value} kWh is beyond any counter"
    return None


def fit(profile: MeterProfile, values: dict[str, str]) -> int | None:
    """How well a profile's decoded registers describe a live meter: the number of registers that carry a
    plausible non-zero value, or None when the map cannot be this meter's.

    A wrong map still answers when its addresses fall inside the real one (gaps read 0), so a three-phase
    profile needs two live phases, and a profile with a serial register needs a serial."""
    if any(implausible(meaning, value) for meaning, value in values.items()):
        return None
    counters = {"import_kwh", "heat_gcal"} & set(profile.meanings)
    if counters and not counters & set(values):
        return None  # a meter whose counter is not where the profile keeps it is not this profile's
    live = {m for m, v in values.items() if Decimal(v) != 0}
    if "voltage_l1" in values and "voltage_l1" not in live:
        return None
    if profile.phases == 3 and len(live & {"voltage_l1", "voltage_l2", "voltage_l3"}) < 2:
        return None
    if "serial_number" in values and "serial_number" not in live:
        return None
    return len(live)


Progress = Callable[[str, str], None]  # (kind: found | probed | bus, text)


def _quiet(_kind: str, _text: str) -> None:
    return None


class _Scan:
    def __init__(self, profiles: dict[str, MeterProfile], timeout: float, deadline: float, progress: Progress,
                 result: ScanResult):
        self.profiles = [p for p in profiles.values() if p.protocol == "modbus"]
        self.iec_profiles = [p for p in profiles.values() if p.protocol == "iec62056-21"]
        self.mbus_profiles = [p for p in profiles.values() if p.protocol == "mbus"]
        self.dlms_profiles = [p for p in profiles.values() if p.protocol == "dlms"]
        self.timeout = timeout
        self.deadline = deadline
        self.progress = progress
        self.result = result

    def out_of_time(self) -> bool:
        if time.monotonic() >= self.deadline:
            self.result.complete = False
            return True
        return False

    async def answers(self, bus: ModbusBus, unit: int) -> bool:
        """One short request: any answer, a Modbus exception included, means a device has this address."""
        if not await bus.ensure_open():
            return False
        assert bus.client is not None
        try:
            await asyncio.wait_for(bus.client.read_input_registers(0, count=1, device_id=unit), self.timeout * 2)
        except (TimeoutError, ModbusException, OSError):
            # A late answer must not be taken for the next unit's: start the next probe on a fresh link.
            bus.close()
            return False
        return True

    async def best_fit(self, bus: BusReader, profiles: list[MeterProfile],
                       meter_of: Callable[[MeterProfile], MeterConfig],
                       identity: str = "") -> tuple[MeterProfile, dict[str, str]] | None:
        """Each profile reads the meter; the one whose values describe a live meter best, or None. The profiles
        that name what the meter says it is (``identified_by``: its maker or model) are tried first, and the
        others only when none of those fits: two heat profiles read one heat meter equally well."""
        named = [p for p in profiles if identity and p.identifies(identity)]
        if named:
            found = await self.best_fit(bus, named, meter_of)
            if found is not None:
                return found
            profiles = [p for p in profiles if p not in named]
        best: tuple[int, int, MeterProfile, dict[str, str]] | None = None
        for profile in profiles:
            try:
                values = await bus.read(meter_of(profile))
            except MeterUnavailable:
                continue
            score = fit(profile, values)
            if score is not None and (best is None or (score, len(values)) > best[:2]):
                best = (score, len(values), profile, values)
        return None if best is None else (best[2], best[3])

    def add_bus(self, config: BusConfig) -> None:
        if config not in self.result.buses:
            self.result.buses.append(config)

    async def identify(self, bus: ModbusBus, unit: int) -> list[FoundMeter]:
        chosen = await self.best_fit(bus, self.profiles, lambda profile: MeterConfig(
            id=f"unit-{unit}", bus=bus.config.name, unit=unit, profile=profile.name, role="subscriber", line="?"))
        if chosen is None:
            return [FoundMeter(bus.config.name, unit, None)]
        profile, values = chosen
        serial = values.get("serial_number")
        found = [FoundMeter(bus.config.name, unit, profile.name, profile.phases, 0, serial, values)]
        for channel in range(1, profile.channels):  # a node's other inputs: those whose counter has counted
            meter = MeterConfig(id=f"unit-{unit}-{channel}", bus=bus.config.name, unit=unit, profile=profile.name,
                                role="subscriber", line="?", channel=channel)
            try:
                more = await bus.read(meter, ("import_kwh",))
            except MeterUnavailable:
                break
            if Decimal(more["import_kwh"]) > 0:
                found.append(FoundMeter(bus.config.name, unit, profile.name, profile.phases, channel, serial,
                                        {**values, **more}))
        return found

    async def walk(self, config: BusConfig, units: list[int], skip: set[int] | None = None) -> set[int]:
        """Ask each unit id in turn on one bus (half-duplex: one request at a time); the ids that answered."""
        bus = ModbusBus(config, {p.name: p for p in self.profiles})
        answered: set[int] = set()
        where = config.host if config.kind == "tcp" else f"{config.device} @ {config.baudrate}"
        try:
            for unit in units:
                if skip and unit in skip:
                    continue
                if self.out_of_time():
                    return answered
                self.result.probed += 1
                if not await self.answers(bus, unit):
                    self.result.silent += 1
                    self.progress("probed", f"{where} unit {unit}")
                    continue
                answered.add(unit)
                self.add_bus(config)
                for meter in await self.identify(bus, unit):
                    self.result.meters.append(meter)
                    self.progress("found", describe(meter, where))
                self.progress("probed", f"{where} unit {unit}")
        finally:
            bus.close()
        return answered

    async def tcp_host(self, host: str, port: int, units: list[int], limit: asyncio.Semaphore) -> None:
        async with limit:
            if self.out_of_time():
                return
            try:  # a host without the port (or without a host) costs one connect timeout, not a timeout per unit
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.timeout * 2)
                writer.close()
            except (OSError, TimeoutError):
                self.result.probed += len(units)
                self.progress("probed", f"{host}:{port} closed")
                return
            name = f"tcp-{host}" + (f"-{port}" if port != 502 else "")
            name = name.replace(".", "-").replace(":", "-")
            await self.walk(BusConfig(name=name, kind="tcp", host=host, port=port, timeout=self.timeout), units)


    async def iec_line(self, config: BusConfig, addresses: list[str], password: str) -> None:
        """Each address's sign-on (one timeout if silent); an answering meter is read by each IEC profile.
        The meters of one line are numbered 1, 2, … in the order found (an IEC meter is chosen by its address,
        the number only tells them apart)."""
        bus = Iec62056Bus(config, {p.name: p for p in self.iec_profiles})
        try:
            for address in addresses:
                if self.out_of_time():
                    return
                self.result.probed += 1
                where = config.device + (f" address {address}" if address else "")
                try:
                    identity = await bus.identify(address)
                except MeterUnavailable:
                    self.result.silent += 1
                    self.progress("probed", where)
                    continue
                self.add_bus(config)
                number = sum(1 for m in self.result.meters if m.bus == config.name) + 1
                chosen = await self.best_fit(bus, self.iec_profiles, lambda profile, a=address, n=number: MeterConfig(
                    id=f"iec-{n}", bus=config.name, unit=n, profile=profile.name, role="subscriber", line="?",
                    address=a, password=password), identity)
                self.found(config, where, number, chosen, address=address, identity=identity)
                self.progress("probed", where)
        finally:
            bus.close()

    async def mbus_line(self, config: BusConfig, addresses: list[int]) -> None:
        """SND_NKE at each primary address (one timeout if silent); an answering meter is read by each M-Bus
        profile. Its secondary address and maker are kept as what it says it is."""
        bus = MbusBus(config, {p.name: p for p in self.mbus_profiles})
        try:
            for address in addresses:
                if self.out_of_time():
                    return
                self.result.probed += 1
                where = f"{config.device} primary {address}"
                answering = await bus.scan([address])
                if not answering:
                    self.result.silent += 1
                    self.progress("probed", where)
                    continue
                self.add_bus(config)
                meter = answering[0]
                chosen = await self.best_fit(bus, self.mbus_profiles, lambda profile, a=address: MeterConfig(
                    id=f"mbus-{a}", bus=config.name, unit=a, profile=profile.name, role="subscriber", line="?"),
                    meter.manufacturer)
                self.found(config, where, address, chosen,
                           identity=f"{meter.manufacturer} {meter.secondary} medium {meter.medium}")
                self.progress("probed", where)
        finally:
            bus.close()

    async def dlms_line(self, config: BusConfig, addresses: list[int], password: str) -> None:
        """An SNRM at each HDLC physical address, as the first profile's session opens it (one timeout if
        silent); an answering meter is then read by each DLMS profile, its serial number naming it."""
        bus = DlmsBus(config, {p.name: p for p in self.dlms_profiles})
        try:
            for address in addresses:
                if self.out_of_time():
                    return
                self.result.probed += 1
                where = f"{config.device} HDLC {address}"

                def meter_of(profile: MeterProfile, a: int = address) -> MeterConfig:
                    return MeterConfig(id=f"dlms-{a}", bus=config.name, unit=a, profile=profile.name,
                                       role="subscriber", line="?", password=password)
                try:
                    await bus.read(meter_of(self.dlms_profiles[0]), ("serial_number",))
                except MeterUnavailable as exc:
                    if isinstance(exc.__cause__, DlmsSilence):
                        self.result.silent += 1
                        self.progress("probed", where)
                        continue
                self.add_bus(config)
                self.found(config, where, address, await self.best_fit(bus, self.dlms_profiles, meter_of))
                self.progress("probed", where)
        finally:
            bus.close()

    def found(self, config: BusConfig, where: str, unit: int, chosen: tuple[MeterProfile, dict[str, str]] | None,
              address: str = "", identity: str = "") -> None:
        profile, values = chosen if chosen is not None else (None, {})
        meter = FoundMeter(config.name, unit, profile.name if profile else None, profile.phases if profile else 1,
                           0, values.get("serial_number") or address or None, values, address, identity)
        self.result.meters.append(meter)
        self.progress("found", describe(meter, where))


def line_name(kind: str, device: str) -> str:
    """``iec-ttyUSB1``, ``mbus-127-0-0-1-7001`` (socket://127.0.0.1:7001): the bus's name in the configuration."""
    tail = device.rstrip("/").rsplit("/", 1)[-1]
    return f"{kind}-" + "".join(c if c.isalnum() else "-" for c in tail)


def describe(meter: FoundMeter, where: str) -> str:
    what = meter.profile or "unknown register map"
    if meter.identity:
        what += f" ({meter.identity})"
    extra = f", input {meter.channel}" if meter.channel else ""
    serial = f", serial {meter.serial}" if meter.serial else ""
    energy = f", {meter.values['import_kwh']} kWh" if "import_kwh" in meter.values else ""
    if "heat_gcal" in meter.values:
        energy += f", {meter.values['heat_gcal']} Gcal"
    return f"{where} unit {meter.unit}{extra}: {what}{serial}{energy}"


async def scan(profiles: dict[str, MeterProfile], *, serial: str | None = None, bauds: Iterable[int] = (9600,),
               parity: str = "N", stopbits: int = 1, hosts: Iterable[str] = (), port: int = 502,
               units: list[int] | None = None, tcp_units: list[int] | None = None, timeout: float = 0.3,
               budget: float = 120.0, concurrency: int = 32, progress: Progress = _quiet,
               iec: str | None = None, iec_addresses: list[str] | None = None, iec_baud: int = 9600,
               iec_password: str = "", mbus: str | None = None, mbus_units: list[int] | None = None,
               mbus_baud: int = 2400, dlms: str | None = None, dlms_units: list[int] | None = None,
               dlms_baud: int = 9600, dlms_password: str = "") -> ScanResult:
    """Walk the Modbus serial line at each baud rate (a unit found at one rate is not asked again at the next),
    the IEC 62056-21 and M-Bus lines, and the TCP hosts, concurrently (each line on its own), within ``budget``
    seconds in all."""
    started = time.monotonic()
    units = units or list(range(1, 33))
    tcp_units = tcp_units or units
    hosts = list(hosts)
    bauds = list(bauds)
    iec_addresses = iec_addresses if iec_addresses is not None else [""]
    mbus_units = mbus_units or units
    dlms_units = dlms_units or units
    result = ScanResult(budget_s=budget, planned=(len(units) * len(bauds) if serial else 0) + len(hosts) * len(tcp_units)
                        + (len(iec_addresses) if iec else 0) + (len(mbus_units) if mbus else 0)
                        + (len(dlms_units) if dlms else 0))
    walker = _Scan(profiles, timeout, started + budget, progress, result)

    async def serial_line() -> None:
        if not serial:
            return
        found: set[int] = set()
        name = "rs485-" + serial.rstrip("/").rsplit("/", 1)[-1]
        for baud in bauds:
            config = BusConfig(name=name if len(bauds) == 1 else f"{name}-{baud}", kind="rtu", device=serial,
                               baudrate=baud, parity=parity, stopbits=stopbits, timeout=timeout)
            found |= await walker.walk(config, units, skip=found)

    lines = []
    if iec:
        lines.append(walker.iec_line(BusConfig(name=line_name("iec", iec), kind="iec62056-21",
                                               device=iec, baudrate=iec_baud, timeout=IEC_TIMEOUT),
                                     iec_addresses, iec_password))
    if mbus:
        lines.append(walker.mbus_line(BusConfig(name=line_name("mbus", mbus), kind="mbus",
                                                device=mbus, baudrate=mbus_baud, timeout=MBUS_TIMEOUT), mbus_units))
    if dlms and walker.dlms_profiles:
        lines.append(walker.dlms_line(BusConfig(name=line_name("dlms", dlms), kind="dlms", device=dlms,
                                                baudrate=dlms_baud, timeout=DLMS_TIMEOUT), dlms_units, dlms_password))
    limit = asyncio.Semaphore(concurrency)
    work = asyncio.gather(serial_line(), *lines, *(walker.tcp_host(h, port, tcp_units, limit) for h in hosts))
    try:
        # The walkers stop themselves at the deadline; this bounds the last probe in flight.
        await asyncio.wait_for(work, budget + timeout)
    except TimeoutError:
        result.complete = False
    result.elapsed_s = time.monotonic() - started
    result.meters.sort(key=lambda m: (m.bus, m.unit, m.channel))
    return result
