"""Line voltage: RMS over whole mains cycles from ADC samples, calibrated, and 10-second min/mean/max."""


def rms(samples):
    """RMS of the AC part (the ADC's DC bias removed), in ADC counts."""
    count = len(samples)
    if count == 0:
        return 0.0
    mean = sum(samples) / count
    total = 0.0
    for value in samples:
        delta = value - mean
        total += delta * delta
    return (total / count) ** 0.5


def samples_for_cycles(cycles, mains_hz=50, per_cycle=40):
    """How many samples and how far apart (µs) to cover whole cycles: whole cycles keep RMS unbiased."""
    return cycles * per_cycle, 1_000_000 // (mains_hz * per_cycle)


class VoltageWindow:
    """Aggregates per-measurement RMS volts into the last complete 10-second min/mean/max."""

    def __init__(self, window_ms=10_000):
        self.window_ms = window_ms
        self._start = None
        self._values = []
        self._closed_once = False
        self.mean = self.minimum = self.maximum = 0.0

    def add(self, volts, now_ms, ticks_diff=None):
        diff = ticks_diff or (lambda a, b: a - b)
        if self._start is None:
            self._start = now_ms
        elif diff(now_ms, self._start) >= self.window_ms:
            self.close()
            self._start = now_ms
        self._values.append(volts)
        if not self._closed_once:
            # Until the first window is complete, show what there is (0 V would read as an outage).
            self._publish()

    def close(self):
        self._publish()
        self._values = []
        self._closed_once = True

    def _publish(self):
        if self._values:
            self.mean = sum(self._values) / len(self._values)
            self.minimum = min(self._values)
            self.maximum = max(self._values)
