"""The node's Modbus register map (docs/firmware.md): values in, 16-bit words out, and back for settings.

Input registers (function 04) are measurements; holding registers (03/06/16) are settings, writable
only within a minute after the unlock code was written.
"""

INPUTS = 8
VOLTAGE_CHANNELS = 3

# Input registers
ENERGY = 0x0000  # uint32 Wh per input, high word first, 2 registers per input
VOLTAGE = 0x0010  # per channel: mean, min, max in 0.1 V (uint16), 3 registers per channel
UPTIME = 0x0020  # uint32 seconds
FIRMWARE_VERSION = 0x0022  # major × 256 + minor
SERIAL = 0x0023  # uint32
STATUS = 0x0025  # flags below
LAST_INPUT = 0x0025

# Holding registers
UNLOCK = 0x0100
SLAVE_ADDRESS = 0x0101
BAUD_HUNDREDS = 0x0102  # 96 = 9600 baud
SAVE_EVERY_PULSES = 0x0103
PULSES_PER_KWH = 0x0110  # one per input
CALIBRATION = 0x0120  # uint32 µV per ADC count, 2 registers per voltage channel
LAST_HOLDING = 0x0125

UNLOCK_CODE = 0xB417
UNLOCK_MS = 60_000

# Status flags
STORAGE_OK = 0x0001
CONFIG_UNLOCKED = 0x0002
WRITE_REFUSED = 0x0004
VOLTAGE_OUT_OF_RANGE = 0x0008
RECOVERED_OLDER_RECORD = 0x0010
WATCHDOG_RESET = 0x0020


def u32(value):
    value &= 0xFFFFFFFF
    return [value >> 16, value & 0xFFFF]


def u16(value):
    return max(0, min(0xFFFF, int(value)))


def input_words(node):
    """All input registers, address → word."""
    words = {}
    for index in range(INPUTS):
        high, low = u32(node.counter.energy_wh(index) if index < len(node.counter.pulses) else 0)
        words[ENERGY + 2 * index] = high
        words[ENERGY + 2 * index + 1] = low
    for channel in range(VOLTAGE_CHANNELS):
        window = node.voltages[channel] if channel < len(node.voltages) else None
        base = VOLTAGE + 3 * channel
        words[base] = u16(round(window.mean * 10)) if window else 0
        words[base + 1] = u16(round(window.minimum * 10)) if window else 0
        words[base + 2] = u16(round(window.maximum * 10)) if window else 0
    high, low = u32(node.uptime_s())
    words[UPTIME], words[UPTIME + 1] = high, low
    words[FIRMWARE_VERSION] = node.version
    high, low = u32(node.serial)
    words[SERIAL], words[SERIAL + 1] = high, low
    words[STATUS] = node.status
    return words


def holding_words(settings):
    words = {
        UNLOCK: 0,
        SLAVE_ADDRESS: settings["address"],
        BAUD_HUNDREDS: settings["baudrate"] // 100,
        SAVE_EVERY_PULSES: settings["save_every_pulses"],
    }
    for index in range(INPUTS):
        words[PULSES_PER_KWH + index] = settings["pulses_per_kwh"][index]
    for channel in range(VOLTAGE_CHANNELS):
        high, low = u32(settings["calibration_uv"][channel])
        words[CALIBRATION + 2 * channel], words[CALIBRATION + 2 * channel + 1] = high, low
    return words


def apply_holding(settings, address, word, words):
    """A written holding register → the new settings (validated); raises ValueError when out of range."""
    updated = dict(settings)
    if address == SLAVE_ADDRESS:
        if not 1 <= word <= 247:
            raise ValueError("slave address must be 1..247")
        updated["address"] = word
    elif address == BAUD_HUNDREDS:
        if word * 100 not in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200):
            raise ValueError("unsupported baud rate")
        updated["baudrate"] = word * 100
    elif address == SAVE_EVERY_PULSES:
        if not 1 <= word <= 10_000:
            raise ValueError("save interval must be 1..10000 pulses")
        updated["save_every_pulses"] = word
    elif PULSES_PER_KWH <= address < PULSES_PER_KWH + INPUTS:
        if not 1 <= word <= 10_000:
            raise ValueError("pulses per kWh must be 1..10000")
        values = list(updated["pulses_per_kwh"])
        values[address - PULSES_PER_KWH] = word
        updated["pulses_per_kwh"] = values
    elif CALIBRATION <= address <= LAST_HOLDING:
        channel = (address - CALIBRATION) // 2
        base = CALIBRATION + 2 * channel
        value = (words[base] << 16) | words[base + 1]
        if not 1 <= value <= 10_000_000:
            raise ValueError("calibration must be 1..10 000 000 µV per count")
        values = list(updated["calibration_uv"])
        values[channel] = value
        updated["calibration_uv"] = values
    else:
        raise ValueError("register is read-only")
    return updated
