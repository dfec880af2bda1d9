"""The line node: pulse counters, voltage windows, flash persistence and the Modbus RTU slave, wired together.

``step()`` does one round of work (answer the bus, measure, save, feed the watchdog); ``run()`` loops it.
"""

import register_map as rm
from pulses import PulseCounter
from storage import CounterStore
from voltage import VoltageWindow, rms, samples_for_cycles

VERSION = 0x0100  # 1.0

DEFAULTS = {
    "address": 10,
    "baudrate": 9600,
    "pulses_per_kwh": [1000] * rm.INPUTS,
    "calibration_uv": [11500] * rm.VOLTAGE_CHANNELS,  # ZMPT101B into a 3.3 V, 16-bit ADC: ≈ 11.5 mV per count
    "save_every_pulses": 100,  # at most this many pulses are lost to a power cut
    "save_every_ms": 900_000,  # and a slow meter is saved every 15 minutes
    "debounce_ms": 20,
    "measure_every_ms": 1_000,
    "cycles_per_measurement": 10,
    "voltage_band": (207.0, 253.0),  # Un ± 10 % (EN 50160)
}


def to_signed(word):
    # umodbus packs input/holding registers as signed 16-bit: hand it the same bits.
    return word - 0x10000 if word >= 0x8000 else word


class LineNode:
    def __init__(self, hardware, settings=None, modbus=None, watchdog_ms=8_000):
        self.hw = hardware
        self.settings = dict(DEFAULTS)
        self.settings.update(settings or {})
        self.version = VERSION
        self.serial = hardware.unique_id()
        self.status = 0
        self.boot_ms = hardware.ticks_ms()
        self.counter = PulseCounter(rm.INPUTS, self.settings["pulses_per_kwh"], self.settings["debounce_ms"],
                                    hardware.ticks_diff)
        self.store = CounterStore(hardware.flash, hardware.flash.size)
        restored = self.store.load()
        if restored is not None:
            self.counter.restore(restored)
        self.status |= rm.STORAGE_OK
        self.voltages = [VoltageWindow() for _ in range(min(len(hardware.adcs), rm.VOLTAGE_CHANNELS))]
        self.last_save_ms = self.boot_ms
        self.last_measure_ms = None
        self.unlocked_until = None
        for index in range(min(len(hardware.pulse_pins), rm.INPUTS)):
            hardware.on_pulse(index, self.pulse)
        self.modbus = modbus if modbus is not None else self._make_modbus()
        self._register()
        if watchdog_ms:
            hardware.watchdog(watchdog_ms)

    # --- measurements ---------------------------------------------------------------------
    def pulse(self, index):
        self.counter.edge(index, self.hw.ticks_ms())

    def uptime_s(self):
        return self.hw.ticks_diff(self.hw.ticks_ms(), self.boot_ms) // 1000

    def measure_voltage(self):
        count, period = samples_for_cycles(self.settings["cycles_per_measurement"])
        low, high = self.settings["voltage_band"]
        outside = False
        now = self.hw.ticks_ms()
        for channel, window in enumerate(self.voltages):
            volts = rms(self.hw.sample_adc(channel, count, period)) * self.settings["calibration_uv"][channel] / 1e6
            window.add(volts, now, self.hw.ticks_diff)
            outside = outside or not low <= volts <= high
        if outside:
            self.status |= rm.VOLTAGE_OUT_OF_RANGE
        else:
            self.status &= ~rm.VOLTAGE_OUT_OF_RANGE
        self.last_measure_ms = now

    def maybe_save(self, force=False):
        elapsed = self.hw.ticks_diff(self.hw.ticks_ms(), self.last_save_ms)
        due = self.counter.unsaved >= self.settings["save_every_pulses"] or (
            self.counter.unsaved > 0 and elapsed >= self.settings["save_every_ms"])
        if force or due:
            self.store.save(self.counter.pulses)
            self.counter.unsaved = 0
            self.last_save_ms = self.hw.ticks_ms()
            return True
        return False

    def step(self):
        now = self.hw.ticks_ms()
        if self.last_measure_ms is None or self.hw.ticks_diff(now, self.last_measure_ms) >= self.settings[
                "measure_every_ms"]:
            self.measure_voltage()
        if self.unlocked_until is not None and self.hw.ticks_diff(now, self.unlocked_until) >= 0:
            self.unlocked_until = None
            self.status &= ~rm.CONFIG_UNLOCKED
        self.modbus.process()
        self.maybe_save()
        self.hw.feed_watchdog()

    def run(self):
        while True:
            self.step()

    # --- Modbus -----------------------------------------------------------------------------
    def _make_modbus(self):
        from umodbus.serial import ModbusRTU

        return ModbusRTU(addr=self.settings["address"], baudrate=self.settings["baudrate"],
                         pins=(self.hw.tx, self.hw.rx), ctrl_pin=self.hw.de_pin, uart_id=self.hw.uart_id)

    def _register(self):
        for address, word in rm.input_words(self).items():
            self.modbus.add_ireg(address, to_signed(word), on_get_cb=self._refresh)
        for address, word in rm.holding_words(self.settings).items():
            self.modbus.add_hreg(address, to_signed(word), on_set_cb=self._written)

    def _refresh(self, reg_type=None, address=None, val=None):
        # Called before a read is answered: every register shows the same instant.
        for register, word in rm.input_words(self).items():
            self.modbus.set_ireg(register, to_signed(word))

    def _written(self, reg_type=None, address=None, val=None):
        values = val if isinstance(val, list) else [val]
        words = rm.holding_words(self.settings)
        for offset, word in enumerate(values):
            words[address + offset] = word & 0xFFFF
        now = self.hw.ticks_ms()
        if address == rm.UNLOCK:
            if values[0] & 0xFFFF == rm.UNLOCK_CODE:
                self.unlocked_until = self.hw.ticks_add(now, rm.UNLOCK_MS)
                self.status |= rm.CONFIG_UNLOCKED
                self.status &= ~rm.WRITE_REFUSED
            self._publish_settings()
            return
        if self.unlocked_until is None:
            # The library has already answered the write: undo it and say so in the status register.
            self.status |= rm.WRITE_REFUSED
            self._publish_settings()
            return
        updated = self.settings
        try:
            for offset in range(len(values)):
                updated = rm.apply_holding(updated, address + offset, words[address + offset], words)
        except ValueError:
            self.status |= rm.WRITE_REFUSED
            self._publish_settings()
            return
        self.settings = updated
        self.counter.pulses_per_kwh = list(updated["pulses_per_kwh"])
        self._publish_settings()

    def _publish_settings(self):
        for register, word in rm.holding_words(self.settings).items():
            self.modbus.set_hreg(register, to_signed(word))
