"""Meter profiles: register maps as data (TOML files beside this module), extendable by users.

A profile says, for one meter model, where each quantity lives (function code, address),
how it is encoded (type, word order, scale) and what it means (import kWh, voltage L1, …).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

TYPES = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2, "uint64": 4, "float64": 4}
FUNCTIONS = (3, 4)
ENERGY_MEANINGS = ("import_kwh", "export_kwh")
KNOWN_MEANINGS = (
    "import_kwh", "export_kwh", "voltage_l1", "voltage_l2", "voltage_l3", "current_l1",
    "current_l2", "current_l3", "power_w", "frequency_hz", "serial_number",
)


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


def parse_profile(text: str, source: str) -> MeterProfile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from exc
    head = data.get("profile")
    if not isinstance(head, dict) or not head.get("name"):
        raise ProfileError(f"{source}: needs a [profile] table with a name")
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


def builtin_profiles() -> dict[str, MeterProfile]:
    found = {}
    for entry in resources.files("shared.profiles").iterdir():
        if entry.name.endswith(".toml"):
            profile = parse_profile(entry.read_text(encoding="utf-8"), f"shared/profiles/{entry.name}")
            found[profile.name] = profile
    return found


def load_profiles(extra_dirs: tuple[Path, ...] = ()) -> dict[str, MeterProfile]:
    """Built-in profiles plus the user's ``*.toml`` files (a user profile overrides a built-in)."""
    found = builtin_profiles()
    for folder in extra_dirs:
        for path in sorted(Path(folder).glob("*.toml")):
            profile = parse_profile(path.read_text(encoding="utf-8"), str(path))
            found[profile.name] = profile
    return found
