"""Meter profiles: register maps as data (TOML files beside this module), extendable by users.

A profile says, for one meter model, where each quantity lives (function code, address),
how it is encoded (type, word order, scale) and what it means (import kWh, voltage L1, …). For a meter
read by IEC 62056-21 (``protocol = "iec62056-21"``) it lists ``[[value]]`` entries instead: the OBIS code or
the maker's parameter name, which of its values, and the scale; with the mode (``readout`` or
``programming``), the block check the maker uses and the source the codes were taken from. A DLMS/COSEM
meter's (``protocol = "dlms"``) lists ``[[object]]`` entries: the COSEM object's OBIS code, its interface class
and the unit the value is kept in.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path

TYPES = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2, "uint64": 4, "float64": 4}
FUNCTIONS = (3, 4)
ENERGY_MEANINGS = ("import_kwh", "export_kwh")
KNOWN_MEANINGS = (
    "import_kwh", "export_kwh", "voltage_l1", "voltage_l2", "voltage_l3", "current_l1",
    "current_l2", "current_l3", "power_w", "frequency_hz", "serial_number",
    # a time-of-use meter's registers by tariff zone (T1 day/peak, T2 night, …), beside the total import_kwh
    "import_kwh_t1", "import_kwh_t2", "import_kwh_t3", "import_kwh_t4",
    # a heat meter's (M-Bus)
    "heat_gcal", "volume_m3", "flow_m3h", "flow_temp_c", "return_temp_c", "error_flags",
)


PROTOCOLS = ("modbus", "iec62056-21", "mbus", "dlms")
# An M-Bus profile's quantities → the record types (EN 13757-3 VIFs, as pyMeterBus names them) that carry them.
MBUS_QUANTITIES = {
    "energy": ("ENERGY_WH", "ENERGY_J"), "volume": ("VOLUME",), "volume_flow": ("VOLUME_FLOW",),
    "power": ("POWER_W", "POWER_J_H"), "flow_temperature": ("FLOW_TEMPERATURE",),
    "return_temperature": ("RETURN_TEMPERATURE",), "temperature_difference": ("TEMPERATURE_DIFFERENCE",),
    "error_flags": ("ERROR_FLAGS",),
}
MBUS_CONVERSIONS = ("", "Gcal", "kWh")
IEC_MODES = ("readout", "programming")
IEC_CHECKS = ("xor", "sum7")
# DLMS/COSEM interface classes a profile may read: 1 Data (a serial number), 3 Register and 4 Extended register
# (value × 10^scaler in a unit).
DLMS_CLASSES = (1, 3, 4)
DLMS_UNITS = ("", "kWh", "Wh", "V", "A", "W", "kW", "Hz", "varh", "kvarh")


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file and the register."""


@dataclass(frozen=True)
class RegisterDef:
    meaning: str
    address: int
    function: int = 4
    type: str = "float32"
    word_order: str = "big"
    scale: str = "1"
    unit: str = ""
    per_channel: bool = False

    @property
    def count(self) -> int:
        return TYPES[self.type]


@dataclass(frozen=True)
class IecValue:
    """One quantity of an IEC 62056-21 meter: the data set's name and which of its values (the n-th data set
    of that name in an answer, or the n-th value inside its brackets)."""

    meaning: str
    code: str  # an OBIS code (1.8.0) or a maker's parameter (ET0PE)
    index: int = 0
    scale: str = "1"


@dataclass(frozen=True)
class MbusRecordDef:
    """One quantity of an M-Bus meter: the records that may carry it, which storage (0: now, 1: the last
    due date, …) and tariff, and the unit to convert it to."""

    meaning: str
    types: tuple[str, ...]
    storage: int = 0
    tariff: int = 0
    to: str = ""  # "Gcal" for heat energy, "kWh"; empty: the record's own unit


@dataclass(frozen=True)
class DlmsObjectDef:
    """One quantity of a DLMS/COSEM meter: the object's logical name (OBIS, six groups), its interface class,
    and the unit to keep the value in (the meter's own unit, from the register's scaler_unit, is converted)."""

    meaning: str
    obis: str  # "1.0.1.8.0.255": A.B.C.D.E.F
    class_id: int = 3
    unit: str = ""


@dataclass(frozen=True)
class MeterProfile:
    name: str
    title: str
    registers: tuple[RegisterDef, ...]
    protocol: str = "modbus"
    phases: int = 1
    default_baud: int = 9600
    default_parity: str = "N"
    default_stopbits: int = 1
    channels: int = 1
    channel_stride: int = 0
    values: tuple[IecValue, ...] = ()  # IEC 62056-21 only
    records: tuple[MbusRecordDef, ...] = ()  # M-Bus only
    objects: tuple[DlmsObjectDef, ...] = ()  # DLMS/COSEM only
    # DLMS/COSEM: the logical device read (1: the management logical device) and the client SAPs for the lowest
    # security (16: the public client, IEC 62056-5-3) and for low-level security (the password's client: 32 unless
    # the meter's documentation says otherwise).
    logical_device: int = 1
    client_lowest: int = 16
    client_lls: int = 32
    mode: str = "readout"  # IEC 62056-21: readout (every data set at once) or programming (R1 per parameter)
    check: str = "xor"  # IEC 62056-21's block check: xor (the standard) or sum7 (Energomera)
    source: str = ""
    # What the meter says it is, for the installer's scan: an IEC 62056-21 identification's maker and model
    # (``EKT5CE301v12`` is named by "EKT" or "CE301"), an M-Bus header's manufacturer code ("KAM"). A scan
    # tries the profiles that name the meter first; the others only when none of those fits.
    identified_by: tuple[str, ...] = ()

    def identifies(self, identity: str) -> bool:
        return any(mark.upper() in identity.upper() for mark in self.identified_by)

    def registers_for(self, channel: int = 0) -> tuple[RegisterDef, ...]:
        """The register map of one meter; on a multi-input node, of input ``channel``."""
        if not 0 <= channel < self.channels:
            raise ProfileError(f"profile {self.name}: channel {channel} outside 0..{self.channels - 1}")
        return tuple(
            replace(r, address=r.address + channel * self.channel_stride) if r.per_channel else r
            for r in self.registers
        )

    def register(self, meaning: str) -> RegisterDef | None:
        return next((r for r in self.registers if r.meaning == meaning), None)

    @property
    def meanings(self) -> tuple[str, ...]:
        return (tuple(r.meaning for r in self.registers) or tuple(v.meaning for v in self.values)
                or tuple(r.meaning for r in self.records) or tuple(o.meaning for o in self.objects))


def parse_profile(text: str, source: str) -> MeterProfile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from exc
    profile = _parse_profile(data, source)
    marks = data["profile"].get("identified_by", [])
    if not isinstance(marks, list) or not all(isinstance(m, str) and m.strip() for m in marks):
        raise ProfileError(f"{source}: identified_by must be a list of texts, e.g. [\"KAM\"]")
    return replace(profile, identified_by=tuple(m.strip() for m in marks))


def _parse_profile(data: dict, source: str) -> MeterProfile:
    head = data.get("profile")
    if not isinstance(head, dict) or not head.get("name"):
        raise ProfileError(f"{source}: needs a [profile] table with a name")
    protocol = str(head.get("protocol", "modbus"))
    if protocol not in PROTOCOLS:
        raise ProfileError(f"{source}: protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if protocol == "iec62056-21":
        return _iec_profile(data, head, source)
    if protocol == "mbus":
        return _mbus_profile(data, head, source)
    if protocol == "dlms":
        return _dlms_profile(data, head, source)
    registers = []
    for index, spec in enumerate(data.get("register", [])):
        where = f"{source}: [[register]] #{index + 1}"
        meaning = spec.get("meaning")
        if not isinstance(meaning, str) or not meaning:
            raise ProfileError(f"{where}: meaning is missing")
        kind = spec.get("type", "float32")
        if kind not in TYPES:
            raise ProfileError(f"{where} ({meaning}): type {kind!r} is not one of {', '.join(TYPES)}")
        function = spec.get("function", 4)
        if function not in FUNCTIONS:
            raise ProfileError(f"{where} ({meaning}): function must be 3 or 4, got {function!r}")
        address = spec.get("address")
        if not isinstance(address, int) or not 0 <= address <= 0xFFFF:
            raise ProfileError(f"{where} ({meaning}): address must be 0..65535, got {address!r}")
        order = spec.get("word_order", "big")
        if order not in ("big", "little"):
            raise ProfileError(f"{where} ({meaning}): word_order must be big or little")
        registers.append(
            RegisterDef(
                meaning=meaning,
                address=address,
                function=function,
                type=kind,
                word_order=order,
                scale=str(spec.get("scale", "1")),
                unit=str(spec.get("unit", "")),
                per_channel=bool(spec.get("per_channel", False)),
            )
        )
    if not registers:
        raise ProfileError(f"{source}: has no [[register]] entries")
    meanings = [r.meaning for r in registers]
    if len(set(meanings)) != len(meanings):
        raise ProfileError(f"{source}: a meaning is listed twice: {sorted(meanings)}")
    return MeterProfile(
        name=str(head["name"]),
        title=str(head.get("title", head["name"])),
        registers=tuple(registers),
        protocol=str(head.get("protocol", "modbus")),
        phases=int(head.get("phases", 1)),
        default_baud=int(head.get("default_baud", 9600)),
        default_parity=str(head.get("default_parity", "N")),
        default_stopbits=int(head.get("default_stopbits", 1)),
        channels=int(head.get("channels", 1)),
        channel_stride=int(head.get("channel_stride", 0)),
    )


def _iec_profile(data: dict, head: dict, source: str) -> MeterProfile:
    values = []
    for index, spec in enumerate(data.get("value", [])):
        where = f"{source}: [[value]] #{index + 1}"
        meaning, code = spec.get("meaning"), spec.get("code")
        if not isinstance(meaning, str) or not meaning:
            raise ProfileError(f"{where}: meaning is missing")
        if not isinstance(code, str) or not code or any(c in code for c in "()!/\r\n"):
            raise ProfileError(f"{where} ({meaning}): code must be an OBIS code or parameter name, got {code!r}")
        position = spec.get("index", 0)
        if not isinstance(position, int) or not 0 <= position < 64:
            raise ProfileError(f"{where} ({meaning}): index must be 0..63, got {position!r}")
        values.append(IecValue(meaning, code, position, str(spec.get("scale", "1"))))
    if not values:
        raise ProfileError(f"{source}: has no [[value]] entries")
    meanings = [v.meaning for v in values]
    if len(set(meanings)) != len(meanings):
        raise ProfileError(f"{source}: a meaning is listed twice: {sorted(meanings)}")
    mode, check = str(head.get("mode", "readout")), str(head.get("check", "xor"))
    if mode not in IEC_MODES:
        raise ProfileError(f"{source}: mode must be readout or programming, got {mode!r}")
    if check not in IEC_CHECKS:
        raise ProfileError(f"{source}: check must be xor or sum7, got {check!r}")
    return MeterProfile(
        name=str(head["name"]), title=str(head.get("title", head["name"])), registers=(),
        protocol="iec62056-21", phases=int(head.get("phases", 1)), default_baud=int(head.get("default_baud", 9600)),
        values=tuple(values), mode=mode, check=check, source=str(head.get("source", "")),
    )


def _mbus_profile(data: dict, head: dict, source: str) -> MeterProfile:
    records = []
    for index, spec in enumerate(data.get("record", [])):
        where = f"{source}: [[record]] #{index + 1}"
        meaning, quantity = spec.get("meaning"), spec.get("quantity")
        if not isinstance(meaning, str) or not meaning:
            raise ProfileError(f"{where}: meaning is missing")
        if quantity not in MBUS_QUANTITIES:
            raise ProfileError(f"{where} ({meaning}): quantity must be one of {', '.join(MBUS_QUANTITIES)}")
        storage, tariff, to = spec.get("storage", 0), spec.get("tariff", 0), spec.get("to", "")
        if not isinstance(storage, int) or not isinstance(tariff, int) or storage < 0 or tariff < 0:
            raise ProfileError(f"{where} ({meaning}): storage and tariff are whole numbers from 0")
        if to not in MBUS_CONVERSIONS or (to and quantity != "energy"):
            raise ProfileError(f"{where} ({meaning}): to = Gcal or kWh, for an energy record only")
        records.append(MbusRecordDef(meaning, MBUS_QUANTITIES[quantity], storage, tariff, to))
    if not records:
        raise ProfileError(f"{source}: has no [[record]] entries")
    return MeterProfile(
        name=str(head["name"]), title=str(head.get("title", head["name"])), registers=(), protocol="mbus",
        default_baud=int(head.get("default_baud", 2400)), records=tuple(records), source=str(head.get("source", "")),
    )


def _dlms_profile(data: dict, head: dict, source: str) -> MeterProfile:
    objects = []
    for index, spec in enumerate(data.get("object", [])):
        where = f"{source}: [[object]] #{index + 1}"
        meaning, code = spec.get("meaning"), spec.get("obis")
        if not isinstance(meaning, str) or not meaning:
            raise ProfileError(f"{where}: meaning is missing")
        groups = str(code).split(".") if isinstance(code, str) else []
        if len(groups) != 6 or not all(g.isdigit() and int(g) <= 255 for g in groups):
            raise ProfileError(f"{where} ({meaning}): obis must be six groups A.B.C.D.E.F (1.0.1.8.0.255), got {code!r}")
        class_id, unit = spec.get("class", 3), spec.get("unit", "")
        if class_id not in DLMS_CLASSES:
            raise ProfileError(f"{where} ({meaning}): class must be 1 (Data), 3 (Register) or 4, got {class_id!r}")
        if unit not in DLMS_UNITS or (unit and class_id == 1):
            raise ProfileError(f"{where} ({meaning}): unit must be one of {', '.join(u for u in DLMS_UNITS if u)}, "
                               "for a register (class 3 or 4)")
        objects.append(DlmsObjectDef(meaning, str(code), class_id, unit))
    if not objects:
        raise ProfileError(f"{source}: has no [[object]] entries")
    meanings = [o.meaning for o in objects]
    if len(set(meanings)) != len(meanings):
        raise ProfileError(f"{source}: a meaning is listed twice: {sorted(meanings)}")
    addresses = {key: head.get(key, default) for key, default in
                 (("logical_device", 1), ("client_lowest", 16), ("client_lls", 32))}
    for key, value in addresses.items():
        if not isinstance(value, int) or not 0 <= value <= 0x3FFF:
            raise ProfileError(f"{source}: {key} must be a whole number 0..16383, got {value!r}")
    return MeterProfile(
        name=str(head["name"]), title=str(head.get("title", head["name"])), registers=(), protocol="dlms",
        phases=int(head.get("phases", 1)), default_baud=int(head.get("default_baud", 9600)), objects=tuple(objects),
        source=str(head.get("source", "")), **addresses,
    )


@cache
def _builtin() -> dict[str, MeterProfile]:
    """Parsed once per process: the gateway asks for its profiles at every topology and trial read."""
    found = {}
    for entry in resources.files("shared.profiles").iterdir():
        if entry.name.endswith(".toml"):
            profile = parse_profile(entry.read_text(encoding="utf-8"), f"shared/profiles/{entry.name}")
            found[profile.name] = profile
    return found


def builtin_profiles() -> dict[str, MeterProfile]:
    return dict(_builtin())  # the caller's own dict: adding to it changes no one else's


def load_profiles(extra_dirs: tuple[Path, ...] = ()) -> dict[str, MeterProfile]:
    """Built-in profiles plus the user's ``*.toml`` files (a user profile overrides a built-in)."""
    found = builtin_profiles()
    for folder in extra_dirs:
        for path in sorted(Path(folder).glob("*.toml")):
            profile = parse_profile(path.read_text(encoding="utf-8"), str(path))
            found[profile.name] = profile
    return found
