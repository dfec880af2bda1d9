"""Register words ↔ values: float32/uint32/int32/uint16/int16/uint64/float64, word order, scale.

Decoded values are decimal strings (a float32 counter is given to the Wh), so they go into a
signed batch exactly as read.
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal

from shared.profiles import RegisterDef

FORMATS = {"uint16": "H", "int16": "h", "uint32": "I", "int32": "i", "float32": "f", "uint64": "Q", "float64": "d"}
INTEGER_TYPES = ("uint16", "int16", "uint32", "int32", "uint64")


class DecodeError(ValueError):
    """Register words that do not make a valid value (NaN, infinity, wrong length)."""


def decode_value(words: list[int], register: RegisterDef) -> str:
    """Words as received → the scaled value as a decimal string (3 decimals for floats)."""
    if len(words) != register.count:
        raise DecodeError(f"{register.meaning}: expected {register.count} registers, got {len(words)}")
    ordered = words if register.word_order == "big" else list(reversed(words))
    raw = struct.unpack(">" + FORMATS[register.type], b"".join(w.to_bytes(2, "big") for w in ordered))[0]
    if register.type in INTEGER_TYPES:
        value = Decimal(raw) * Decimal(register.scale)
        return f"{value.normalize():f}" if value != value.to_integral() else f"{value:.0f}"
    if not math.isfinite(raw):
        raise DecodeError(f"{register.meaning} at {register.address:#06x}: not a number ({raw})")
    return f"{Decimal(repr(raw)) * Decimal(register.scale):.3f}"


def encode_value(value: float | Decimal, register: RegisterDef) -> list[int]:
    """A physical value → the words a meter would send (the simulator's side)."""
    raw = Decimal(str(value)) / Decimal(register.scale)
    if register.type in INTEGER_TYPES:
        data = struct.pack(">" + FORMATS[register.type], int(raw.to_integral_value()))
    else:
        data = struct.pack(">" + FORMATS[register.type], float(raw))
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return words if register.word_order == "big" else words[::-1]
