"""Fakes for the node's hardware layer: a settable clock, S0 inputs, a sine-wave ADC, NOR-like flash."""

import math


class FakeFlash:
    """Erase sets 0xFF; a write may be cut short after ``tear_after`` bytes (a power cut mid-write)."""

    SECTOR = 4096

    def __init__(self, size=65536):
        self.size = size
        self.data = bytearray(b"\xff" * size)
        self.tear_after = None
        self.torn = False
        self.writes = 0
        self.erases = 0

    def erase(self, sector):
        start = sector * self.SECTOR
        self.data[start:start + self.SECTOR] = b"\xff" * self.SECTOR
        self.erases += 1

    def write(self, address, data):
        if self.tear_after is not None:
            # The power fails here: only the first bytes reach the flash (the caller is dead after this).
            data = data[:self.tear_after]
            self.tear_after = None
            self.torn = True
        self.data[address:address + len(data)] = data
        self.writes += 1

    def read(self, address, length):
        return bytes(self.data[address:address + length])


class FakeHardware:
    def __init__(self, inputs=8, volts=(230.0, 230.0, 230.0), calibration_uv=11500, flash=None):
        self.now = 1000
        self.pulse_pins = list(range(inputs))
        self.adcs = list(range(len(volts)))
        self.volts = list(volts)
        self.calibration_uv = calibration_uv
        self.flash = flash or FakeFlash()
        self.handlers = {}
        self.uart_id, self.tx, self.rx, self.de_pin = 1, 17, 16, 4
        self.watchdog_ms = None
        self.fed = 0

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, delta):
        return a + delta

    def advance(self, ms):
        self.now += ms

    def on_pulse(self, index, handler):
        self.handlers[index] = handler

    def pulse(self, index, count=1, spacing_ms=100):
        for _ in range(count):
            self.handlers[index](index)
            self.now += spacing_ms

    def sample_adc(self, channel, count, period_us):
        # A 50 Hz sine around the ADC's mid-scale bias, amplitude so that RMS × calibration = volts.
        amplitude = self.volts[channel] * 1e6 / self.calibration_uv * math.sqrt(2)
        return [int(32768 + amplitude * math.sin(2 * math.pi * 50 * i * period_us / 1e6)) for i in range(count)]

    def watchdog(self, timeout_ms):
        self.watchdog_ms = timeout_ms

    def feed_watchdog(self):
        self.fed += 1

    def unique_id(self):
        return 0x00C0FFEE
