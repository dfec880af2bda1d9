"""The demo stops cleanly: Ctrl-C (SIGINT) or ``kill`` (SIGTERM) takes the cloud it started down with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provisioning.ports import free_port

ROOT = Path(__file__).resolve().parent.parent


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_the_demo_stops_with_everything_it_started(tmp_path, how):
    port = free_port()
    # A poll a simulated day keeps the month short; the demo then serves its pages until stopped.
    demo = subprocess.Popen(
        [sys.executable, "-m", "provisioning.cli", "demo", "--port", str(port), "--workdir", str(tmp_path / "demo"),
         "--poll-seconds", "86400"], cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = demo.stderr.readline()
            lines.append(line)
            if "Ctrl-C stops everything" in line or not line:
                break
        assert "Ctrl-C stops everything" in lines[-1], "".join(lines)
        assert not port_is_free(port), "the demo's cloud is not serving"
        if how == signal.SIGINT:
            os.killpg(demo.pid, how)  # a terminal's Ctrl-C reaches the whole foreground group
        else:
            demo.send_signal(how)  # kill PID: the demo alone
        code = demo.wait(timeout=30)
        rest = demo.stderr.read()
        assert code == 0, rest
        assert "Traceback" not in rest, rest
        deadline = time.monotonic() + 10
        while not port_is_free(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_is_free(port), "the cloud outlived the demo"
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
