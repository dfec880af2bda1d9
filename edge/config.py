"""Gateway configuration: identity, cloud, buses, meters and the station's topology (TOML).

Declared once with defaults; every key can be overridden by a ``BALANS_EDGE_*`` variable
(e.g. BALANS_EDGE_CLOUD_URL); errors name the file and the key.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from shared.balance import StationTopology, Thresholds, build_topology
from shared.profiles import ProfileError, load_profiles
from shared.scenario import Scenario
from shared.site_document import LINE_ROLES, ROLES


class ConfigError(ValueError):
    """A gateway configuration that cannot run; the message names the key."""


@dataclass(frozen=True)
class BusConfig:
    name: str
    kind: str = "tcp"  # tcp | rtu (Modbus) | iec62056-21 | mbus | dlms
    host: str = "127.0.0.1"
    port: int = 502
    # serial port for rtu and iec62056-21, e.g. /dev/ttyUSB0; for iec62056-21 also socket://host:port
    # (an RS-485-to-Ethernet converter)
    device: str = ""
    baudrate: int = 9600  # iec62056-21: the highest rate to agree on (the meter offers its own)
    parity: str = "N"
    stopbits: int = 1
    timeout: float = 0.3  # one silent meter costs this much per cycle, not a stalled bus
    turnaround: float = 0.02  # the meters' typical answer delay (s), for planning reads
    gap_cost_registers: int | None = None  # override the planner's "read through a gap" limit

    def read_through_gap(self) -> int:
        """How many unused registers are cheaper to read than one more request on this bus.

        On a serial line a request costs ≈ 20 characters plus the meter's turnaround, a gap register
        2 characters (FACTS.md). Plain Modbus TCP has no per-byte cost worth counting: merge all that fits.
        """
        if self.gap_cost_registers is not None:
            return self.gap_cost_registers
        if self.kind == "tcp":
            return 125
        char_seconds = 11 / self.baudrate
        return int((20 + self.turnaround / char_seconds) / 2)


@dataclass(frozen=True)
class MeterConfig:
    id: str
    bus: str
    unit: int
    profile: str
    role: str
    line: str | None = None
    account: str | None = None
    channel: int = 0
    max_kw: Decimal = Decimal("100")  # what the connection can physically carry
    timeout: float | None = None  # this meter's own answer timeout (s), when shorter or longer than the bus's
    retries: int = 0  # immediate retries within a cycle before the meter counts as silent
    # iec62056-21: the meter's address on a shared line (often its serial number); mbus: its secondary
    # address (16 hex digits), which selects it instead of the primary address in unit
    address: str = ""
    # iec62056-21 in programming mode: the meter's P1 password; dlms: its LLS password (empty: lowest security)
    password: str = ""


BUS_KINDS = ("tcp", "rtu", "iec62056-21", "mbus", "dlms")
SERIAL_KINDS = ("rtu", "iec62056-21", "mbus", "dlms")
# The protocol a bus of each kind speaks, which its meters' profiles must be written for.
BUS_PROTOCOLS = {"tcp": "modbus", "rtu": "modbus", "iec62056-21": "iec62056-21", "mbus": "mbus", "dlms": "dlms"}
# IEC 62056-21 lets a meter take up to 1.5 s to answer (its reaction time tr); Modbus meters answer in ms.
IEC_TIMEOUT = 1.5
MBUS_TIMEOUT = 0.5
DLMS_TIMEOUT = 1.0  # an HDLC meter answers a frame within a few hundred ms; one second covers a slow converter

# What a connection of each role can physically carry (kW), unless the meter says otherwise:
# a household connection, a 0.4 kV line feeder, a 10/0.4 kV transformer up to 1 MVA.
DEFAULT_MAX_KW = {"subscriber": Decimal("100"), "feeder": Decimal("630"), "station_input": Decimal("1000"),
                  "heat_building": Decimal("1000")}  # a building's heat meter (M-Bus): read, not in the balance


@dataclass(frozen=True)
class GatewayConfig:
    gateway_id: str
    key_path: Path
    database: Path
    cloud_url: str
    site: str
    buses: tuple[BusConfig, ...]
    meters: tuple[MeterConfig, ...]
    lines: dict[str, str] = field(default_factory=dict)
    poll_seconds: int = 900
    interval_minutes: int = 15
    max_gap_minutes: int = 60
    batch_max_rows: int = 5000
    thresholds: Thresholds = field(default_factory=Thresholds)
    health_port: int = 0  # 0 = no health endpoint
    profiles_dir: Path | None = None  # the user's own meter profiles (*.toml), beside the built-in ones
    heartbeat_seconds: int = 300  # signed heartbeat to the cloud (docs/remote.md); 0 = none
    org_key_path: Path | None = None  # the organisation's public key, from enrolment: verifies site configurations
    config_version: int = 0  # the cloud's site configuration version this file holds ([remote] version); 0: local
    source: Path | None = None  # the file this configuration was read from

    def profiles(self):
        return load_profiles((self.profiles_dir,) if self.profiles_dir else ())

    def topology(self) -> StationTopology:
        """The electricity balance's station: the meters whose profile counts kWh (a flat's heat meter on a
        line of its own is read and billed, never balanced)."""
        profiles = self.profiles()
        counting = [m for m in self.meters if m.profile not in profiles or "import_kwh" in profiles[m.profile].meanings]
        heat_only = {m.line for m in self.meters} - {m.line for m in counting}
        return build_topology(((m.id, m.role, m.line) for m in counting),
                              [number for number in self.lines if number not in heat_only])


def load_config(path: Path) -> GatewayConfig:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    base = Path(path).resolve().parent
    gateway = data.get("gateway", {})
    cloud = data.get("cloud", {})

    def setting(table: dict, key: str, env: str, default=None, required=False):
        value = os.environ.get(f"BALANS_EDGE_{env}", table.get(key, default))
        if required and value in (None, ""):
            raise ConfigError(f"{path}: {key} is required (or set BALANS_EDGE_{env})")
        return value

    buses = tuple(_bus(spec, f"{path}: [[bus]] #{i + 1}") for i, spec in enumerate(data.get("bus", [])))
    names = {b.name for b in buses}
    profiles_dir = setting(gateway, "profiles_dir", "PROFILES_DIR", "")
    profiles_dir = base / str(profiles_dir) if profiles_dir else None
    try:
        profiles = load_profiles((profiles_dir,) if profiles_dir else ())
    except ProfileError as exc:
        raise ConfigError(str(exc)) from exc
    meters = []
    for i, spec in enumerate(data.get("meter", [])):
        where = f"{path}: [[meter]] #{i + 1}"
        meter = _meter(spec, where, next((b.kind for b in buses if b.name == spec.get("bus")), None))
        if meter.bus not in names:
            raise ConfigError(f"{where} ({meter.id}): bus {meter.bus!r} is not declared in [[bus]]")
        if meter.profile not in profiles:
            raise ConfigError(f"{where} ({meter.id}): unknown profile {meter.profile!r}; known: {', '.join(sorted(profiles))}")
        speaks = BUS_PROTOCOLS[next(b.kind for b in buses if b.name == meter.bus)]
        if profiles[meter.profile].protocol != speaks:
            raise ConfigError(f"{where} ({meter.id}): profile {meter.profile!r} is for {profiles[meter.profile].protocol}"
                              f" meters, bus {meter.bus!r} speaks {speaks}")
        meters.append(meter)
    ids = [m.id for m in meters]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: a meter id is used twice")
    thresholds = data.get("thresholds", {})
    try:
        return GatewayConfig(
            gateway_id=str(setting(gateway, "id", "GATEWAY_ID", required=True)),
            key_path=base / str(setting(gateway, "key", "KEY", "gateway.key")),
            database=base / str(setting(gateway, "database", "DATABASE", "gateway.sqlite3")),
            cloud_url=str(setting(cloud, "url", "CLOUD_URL", "http://127.0.0.1:8000")).rstrip("/"),
            site=str(setting(gateway, "site", "SITE", "site")),
            buses=buses,
            meters=tuple(meters),
            lines={str(line["number"]): str(line.get("name", line["number"])) for line in data.get("line", [])},
            poll_seconds=int(setting(gateway, "poll_seconds", "POLL_SECONDS", 900)),
            interval_minutes=int(setting(gateway, "interval_minutes", "INTERVAL_MINUTES", 15)),
            max_gap_minutes=int(setting(gateway, "max_gap_minutes", "MAX_GAP_MINUTES", 60)),
            batch_max_rows=int(setting(gateway, "batch_max_rows", "BATCH_MAX_ROWS", 5000)),
            health_port=int(setting(gateway, "health_port", "HEALTH_PORT", 0)),
            profiles_dir=profiles_dir,
            heartbeat_seconds=int(setting(gateway, "heartbeat_seconds", "HEARTBEAT_SECONDS", 300)),
            org_key_path=base / str(setting(gateway, "org_key", "ORG_KEY", "org.pub")),
            config_version=int(data.get("remote", {}).get("version", 0)),
            source=Path(path).resolve(),
            thresholds=Thresholds(
                elevated_pct=Decimal(str(thresholds.get("elevated_pct", "3"))),
                theft_pct=Decimal(str(thresholds.get("theft_pct", "10"))),
            ),
        )
    except (ValueError, ProfileError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _bus(spec: dict, where: str) -> BusConfig:
    if "name" not in spec:
        raise ConfigError(f"{where}: name is required")
    kind = spec.get("kind", "tcp")
    if kind not in BUS_KINDS:
        raise ConfigError(f"{where} ({spec['name']}): kind must be one of {', '.join(BUS_KINDS)}")
    if kind in SERIAL_KINDS and not spec.get("device"):
        raise ConfigError(f"{where} ({spec['name']}): an {kind} bus needs device = \"/dev/ttyUSB0\"")
    if kind == "iec62056-21":
        spec = {"timeout": IEC_TIMEOUT, **spec}
    if kind == "mbus":  # EN 13757-2: 2 400 baud is the common rate; a meter answers within 330 bit times + 50 ms
        spec = {"baudrate": 2400, "timeout": MBUS_TIMEOUT, **spec}
    if kind == "dlms":  # IEC 62056-42: HDLC on a direct line is 8N1; 9 600 baud is the usual RS-485 rate
        spec = {"timeout": DLMS_TIMEOUT, **spec}
    allowed = set(BusConfig.__dataclass_fields__)
    unknown = set(spec) - allowed
    if unknown:
        raise ConfigError(f"{where} ({spec['name']}): unknown keys {sorted(unknown)}")
    return BusConfig(**spec)


def _meter(spec: dict, where: str, bus_kind: str | None = None) -> MeterConfig:
    if bus_kind == "iec62056-21":  # addressed by its address (or alone on the line), not by a Modbus unit id
        spec = {"unit": 1, **spec}
    for key in ("id", "bus", "unit", "profile", "role"):
        if key not in spec:
            raise ConfigError(f"{where}: {key} is required")
    if spec["role"] not in ROLES:
        raise ConfigError(f"{where} ({spec['id']}): role must be one of {', '.join(ROLES)}")
    # M-Bus primary addresses run to 250; a DLMS meter's unit is its HDLC physical (lower) address, to 16 383
    highest = {"mbus": 250, "dlms": 16383}.get(bus_kind, 247)
    if not 1 <= int(spec["unit"]) <= highest:
        raise ConfigError(f"{where} ({spec['id']}): unit must be 1..{highest}")
    if spec["role"] in LINE_ROLES and not spec.get("line"):
        raise ConfigError(f"{where} ({spec['id']}): a {spec['role']} needs line = \"N\"")
    return MeterConfig(
        id=str(spec["id"]),
        bus=str(spec["bus"]),
        unit=int(spec["unit"]),
        profile=str(spec["profile"]),
        role=str(spec["role"]),
        line=str(spec["line"]) if spec.get("line") else None,
        account=str(spec["account"]) if spec.get("account") else None,
        channel=int(spec.get("channel", 0)),
        max_kw=Decimal(str(spec.get("max_kw", DEFAULT_MAX_KW[spec["role"]]))),
        timeout=float(spec["timeout"]) if "timeout" in spec else None,
        retries=int(spec.get("retries", 0)),
        address=str(spec.get("address", "")),
        password=str(spec.get("password", "")),
    )


def config_toml_from_scenario(
    scenario: Scenario, *, gateway_id: str, host: str, port: int, cloud_url: str,
    database: str = "gateway.sqlite3", key: str = "gateway.key", poll_seconds: int = 900,
) -> str:
    """A gateway configuration for a scenario's station (what an installer would write after a bus scan)."""
    out = [
        "[gateway]",
        f'id = "{gateway_id}"',
        f'site = "{scenario.site}"',
        f'key = "{key}"',
        f'database = "{database}"',
        f"poll_seconds = {poll_seconds}",
        "",
        "[cloud]",
        f'url = "{cloud_url}"',
        "",
        "[thresholds]",
        f'elevated_pct = "{scenario.thresholds.elevated_pct}"',
        f'theft_pct = "{scenario.thresholds.theft_pct}"',
        "",
        "[[bus]]",
        'name = "station"',
        'kind = "tcp"',
        f'host = "{host}"',
        f"port = {port}",
        "",
    ]
    for number, name in scenario.line_names.items():
        out += ["[[line]]", f'number = "{number}"', f'name = "{name}"', ""]
    for index, m in enumerate(scenario.meters):
        bus = "station" if index < 247 else f"station{index // 247}"
        out += [
            "[[meter]]",
            f'id = "{m.meter}"',
            f'bus = "{bus}"',
            f"unit = {m.unit}",
            f'profile = "{m.profile}"',
            f'role = "{m.role}"',
        ]
        if m.line:
            out.append(f'line = "{m.line}"')
        if m.account:
            out.append(f'account = "{m.account}"')
        out.append("")
    return "\n".join(out)
