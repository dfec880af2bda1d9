"""The hardware layer: the only module that touches machine.Pin, ADC, UART, the watchdog and flash.

Everything else takes a Hardware object, so the node's logic runs unchanged under test with fakes.
"""

import time


class Hardware:
    """Real hardware on an ESP32/RP2040 board (pins from the node's configuration)."""

    def __init__(self, pulse_pins, adc_pins, uart_id=1, tx=17, rx=16, de_pin=4, flash_offset=0,
                 flash_size=65536):
        import machine

        self.machine = machine
        self.pulse_pins = [machine.Pin(p, machine.Pin.IN, machine.Pin.PULL_UP) for p in pulse_pins]
        self.adcs = [machine.ADC(machine.Pin(p)) for p in adc_pins]
        self.uart_id, self.tx, self.rx, self.de_pin = uart_id, tx, rx, de_pin
        self.flash = BlockFlash(flash_offset, flash_size)
        self._wdt = None

    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def ticks_add(self, a, delta):
        return time.ticks_add(a, delta)

    def on_pulse(self, index, handler):
        # S0 outputs pull the line low for ≥30 ms per pulse: count falling edges.
        pin = self.pulse_pins[index]
        pin.irq(trigger=self.machine.Pin.IRQ_FALLING, handler=lambda _pin: handler(index))

    def sample_adc(self, channel, count, period_us):
        """``count`` raw samples (0..65535) of one channel, ``period_us`` apart."""
        adc = self.adcs[channel]
        samples = []
        next_at = time.ticks_us()
        for _ in range(count):
            while time.ticks_diff(time.ticks_us(), next_at) < 0:
                pass
            samples.append(adc.read_u16())
            next_at = time.ticks_add(next_at, period_us)
        return samples

    def watchdog(self, timeout_ms):
        self._wdt = self.machine.WDT(timeout=timeout_ms)

    def feed_watchdog(self):
        if self._wdt is not None:
            self._wdt.feed()

    def unique_id(self):
        raw = self.machine.unique_id()
        value = 0
        for byte in raw[-4:]:
            value = (value << 8) | byte
        return value


class BlockFlash:
    """A raw flash partition: erase in 4 KB sectors, write and read bytes (esp32.Partition or rp2.Flash)."""

    SECTOR = 4096

    def __init__(self, offset, size):
        try:
            import esp32

            self.device = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="balans")[0]
        except (ImportError, IndexError):
            import rp2

            self.device = rp2.Flash()
        self.offset = offset
        self.size = size

    def erase(self, sector):
        self.device.ioctl(6, (self.offset // self.SECTOR) + sector)

    def write(self, address, data):
        self.device.writeblocks((self.offset + address) // self.SECTOR, data, (self.offset + address) % self.SECTOR)

    def read(self, address, length):
        buffer = bytearray(length)
        self.device.readblocks((self.offset + address) // self.SECTOR, buffer, (self.offset + address) % self.SECTOR)
        return bytes(buffer)
