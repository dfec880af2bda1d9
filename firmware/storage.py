"""Counters that survive power loss: rotating records on flash with a sequence number and CRC.

The partition is a ring of fixed-size records across several 4 KB sectors. Each save writes the
next slot; at boot the valid record (CRC matches) with the highest sequence number wins, so a torn
write loses only that save. A sector is erased just before the ring enters it, and it is always the
oldest one, so the newest valid record is never erased.
"""

import struct

MAGIC = 0xB1A5
RECORD = 64  # bytes: magic, seq, 8 counters, settings, CRC32 (and padding)
_FORMAT = "<HI8IHH"  # magic, seq, pulses × 8, pulses_since_boot flags, reserved


def crc32(data):
    """CRC-32 (IEEE) in two 16-bit halves.

    Computed here because not every MicroPython port has binascii.crc32, and in halves because a
    32-bit value is a heap-allocated big integer on a 32-bit MicroPython, 16-bit halves are not.
    """
    high, low = 0xFFFF, 0xFFFF
    for byte in data:
        low ^= byte
        for _ in range(8):
            carry = low & 1
            low = (low >> 1) | ((high & 1) << 15)
            high >>= 1
            if carry:
                high ^= 0xEDB8
                low ^= 0x8320
    return ((high ^ 0xFFFF) << 16) | (low ^ 0xFFFF)


def encode(seq, pulses, flags=0):
    values = list(pulses) + [0] * (8 - len(pulses))
    body = struct.pack(_FORMAT, MAGIC, seq, *(values + [flags, 0]))
    body += struct.pack("<I", crc32(body))
    return body + b"\xff" * (RECORD - len(body))


def decode(raw):
    """(seq, pulses, flags) of a record, or None when it is blank, torn or corrupt."""
    size = struct.calcsize(_FORMAT)
    body, stored = raw[:size], raw[size:size + 4]
    if len(stored) < 4 or struct.unpack("<I", stored)[0] != crc32(body):
        return None
    values = struct.unpack(_FORMAT, body)
    if values[0] != MAGIC:
        return None
    return values[1], list(values[2:10]), values[10]


class CounterStore:
    def __init__(self, flash, size):
        if size < 2 * flash.SECTOR:
            # With one sector, erasing it for the next save would erase the newest record too.
            raise ValueError("the counter partition needs at least two flash sectors")
        self.flash = flash
        self.slots = size // RECORD
        self.per_sector = flash.SECTOR // RECORD
        self.seq = 0
        self.slot = -1
        self.writes = 0

    def load(self):
        """Scan the ring; return the newest valid pulses (or None on a blank flash)."""
        best = None
        for slot in range(self.slots):
            record = decode(self.flash.read(slot * RECORD, RECORD))
            if record is not None and (best is None or record[0] > best[0][0]):
                best = (record, slot)
        if best is None:
            self.seq, self.slot = 0, -1
            return None
        (self.seq, pulses, _flags), self.slot = best
        return pulses

    def save(self, pulses, flags=0):
        slot = (self.slot + 1) % self.slots
        if slot % self.per_sector == 0:
            self.flash.erase(slot // self.per_sector)
        self.seq += 1
        self.flash.write(slot * RECORD, encode(self.seq, pulses, flags))
        self.slot = slot
        self.writes += 1
