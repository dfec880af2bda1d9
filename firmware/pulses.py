"""S0 pulse counting with debounce: one counter per input, energy in Wh from pulses per kWh."""


class PulseCounter:
    def __init__(self, inputs, pulses_per_kwh, debounce_ms=20, ticks_diff=None):
        self.pulses = [0] * inputs
        self.pulses_per_kwh = list(pulses_per_kwh)
        self.debounce_ms = debounce_ms
        self._last = [None] * inputs
        self._ticks_diff = ticks_diff or (lambda a, b: a - b)
        self.unsaved = 0

    def edge(self, index, now_ms):
        """A falling edge on input ``index``; contact bounce within debounce_ms is ignored."""
        last = self._last[index]
        if last is not None and self._ticks_diff(now_ms, last) < self.debounce_ms:
            return False
        self._last[index] = now_ms
        self.pulses[index] += 1
        self.unsaved += 1
        return True

    def energy_wh(self, index):
        """Whole Wh counted on an input (pulses × 1000 / pulses per kWh), wrapping at 2^32 like the register."""
        return (self.pulses[index] * 1000 // self.pulses_per_kwh[index]) & 0xFFFFFFFF

    def restore(self, pulses):
        for index, value in enumerate(pulses[: len(self.pulses)]):
            self.pulses[index] = value
        self.unsaved = 0
