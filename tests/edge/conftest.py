"""Edge fixtures: a socat PTY pair, the two ends of a serial line for a simulated meter and the gateway."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pytest


@pytest.fixture
def pty_pair(tmp_path):
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (apt-get install socat)")
    meter_end, gateway_end = tmp_path / "meter", tmp_path / "gateway"
    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={meter_end}", f"pty,raw,echo=0,link={gateway_end}"],
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not (meter_end.exists() and gateway_end.exists()) and time.monotonic() < deadline:
        time.sleep(0.02)
    stop = threading.Event()
    try:
        yield str(meter_end), str(gateway_end), stop
    finally:
        stop.set()
        socat.terminate()
        socat.wait(timeout=5)
