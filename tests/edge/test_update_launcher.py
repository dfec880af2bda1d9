"""The update launcher (edge/launcher.py) with real gateway processes: a trial's budget is the time the new version
has been running, so a power cut mid-trial does not spend it; a confirmed version that later crash-loops is left
for the previous slot and reported; and no version is fallen back to that does not know the store's schema."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.launcher import CrashLoop, store_schema, supervise
from edge.store import MIGRATIONS, StoreSchemaNewer, open_database
from edge.update import Slots, is_refused
from tests.edge.release_wheels import release_wheel

pytestmark = pytest.mark.timeout(90)
REPOSITORY = Path(__file__).resolve().parents[2]
SHA = {"0.9.0": "90" * 32, "0.9.1": "91" * 32}


def _gateway(on_new: str, new: str = "0.9.0") -> list[str]:
    """A stand-in for `balans edge run`: version ``new`` does ``on_new``; any other exits cleanly."""
    return [sys.executable, "-P", "-c", "import importlib.metadata as m, pathlib, sys, time\n"
            f"if m.version('balans') == {new!r}:\n    {on_new}\nsys.exit(0)"]


def _launcher(state: Path, command: list[str], env: dict | None = None) -> subprocess.Popen:
    """``python -m edge.launcher`` in a session of its own: killing the session is a power cut."""
    return subprocess.Popen([sys.executable, "-m", "edge.launcher", "--state", str(state), "run", "--", *command],
                            cwd=REPOSITORY, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def _power_cut(launcher: subprocess.Popen) -> None:
    os.killpg(launcher.pid, signal.SIGKILL)  # the launcher and the gateway at once, nothing written on the way
    launcher.wait(10)


def _wait(check, what: str, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _confirmed(slots: Slots, version: str, directory: Path, files: dict | None = None) -> None:
    directory.mkdir(exist_ok=True)
    slots.switch(slots.install(release_wheel(directory, version, files), version), version, 60, SHA[version])
    slots.confirm(version)


def test_a_power_cut_during_a_trial_spends_none_of_it(tmp_path):
    """The new version has 6 s of running to pass. It runs 2 s, the power goes (launcher and gateway killed), and
    the station stays dark longer than what was left of the trial by the wall clock: back up, the trial goes on
    from the 2 s it had run — no rollback — and the new version passes."""
    slots = Slots(tmp_path / "updates")
    slots.switch(slots.install(release_wheel(tmp_path, "0.9.0"), "0.9.0"), "0.9.0", 6.0, SHA["0.9.0"])
    passes = tmp_path / "passes"
    confirm = (f"time.sleep(0.5)\n    if pathlib.Path({str(passes)!r}).exists():\n"
               f"        from edge.update import Slots; Slots(pathlib.Path({str(slots.root)!r})).confirm('0.9.0')\n"
               "        sys.exit(0)\n    time.sleep(60)")
    command = _gateway(confirm)
    launcher = _launcher(tmp_path, command)
    _wait(lambda: slots.read()["trial"]["ran"] >= 2.0, "2 s of running")
    _power_cut(launcher)
    trial = slots.read()["trial"]
    assert trial["version"] == "0.9.0" and 2.0 <= trial["ran"] < 4.0 and trial["exits"] == 0  # a cut is no exit
    time.sleep(max(trial["deadline"] - time.time(), 0) + 0.5)  # dark past the wall-clock end of the trial
    assert time.time() > trial["deadline"]

    launcher = _launcher(tmp_path, command)  # power back: the trial goes on where it was
    _wait(lambda: slots.read()["trial"]["ran"] >= trial["ran"] + 0.6, "more running time")
    _power_cut(launcher)
    again = slots.read()
    assert (again["slot"], again["version"], again["last"]) == ("a", "0.9.0", None)
    assert trial["ran"] + 0.6 <= again["trial"]["ran"] < 6.0 and again["trial"]["exits"] == 0

    passes.touch()  # the third boot: the meters answer, the cloud accepts the heartbeat
    launcher = _launcher(tmp_path, command)
    assert launcher.wait(30) == 0
    pointer = slots.read()
    assert pointer["trial"] is None and (pointer["slot"], pointer["version"]) == ("a", "0.9.0")
    assert pointer["last"]["status"] == "applied" and pointer["refused"] == []


def test_a_trials_running_time_still_runs_out(tmp_path):
    slots = Slots(tmp_path / "updates")
    slots.switch(slots.install(release_wheel(tmp_path, "0.9.0"), "0.9.0"), "0.9.0", 2.0)
    started = time.monotonic()
    assert supervise(slots, _gateway("time.sleep(60)")) == 0  # then the base install ran and exited cleanly
    pointer = slots.read()
    assert pointer["last"]["status"] == "rolled_back" and "within 2 s of running" in pointer["last"]["reason"]
    assert 2.0 <= time.monotonic() - started < 10


def test_a_confirmed_version_that_crash_loops_falls_back_to_the_previous_slot_and_says_so(tmp_path):
    """0.9.1 passed its trial and ran for weeks; then it crashes at every start (a meter's answer it cannot
    decode). systemd restarts the launcher after each exit; at the third exit within the window the launcher
    goes back to 0.9.0 in the other slot, blocks that package, and the next heartbeat reports it."""
    slots = Slots(tmp_path / "updates")
    _confirmed(slots, "0.9.0", tmp_path / "0.9.0")
    _confirmed(slots, "0.9.1", tmp_path / "0.9.1")
    assert (slots.read()["slot"], slots.read()["previous"]["slot"]) == ("b", "a")
    command = _gateway("sys.exit(3)", new="0.9.1")
    env = {"BALANS_UPDATE_FALLBACK_EXITS": "3", "BALANS_UPDATE_FALLBACK_SECONDS": "600"}
    codes = [_launcher(tmp_path, command, env).wait(30) for _ in range(3)]  # systemd's Restart=always
    assert codes == [3, 3, 0]  # the third ran 0.9.0, which exited cleanly
    pointer = slots.read()
    assert (pointer["slot"], pointer["version"], pointer["trial"]) == ("a", "0.9.0", None)
    last = pointer["last"]
    assert (last["version"], last["status"], last["slot"]) == ("0.9.1", "rolled_back", "a")
    assert last["reason"] == "exited 3 times within 600 s while in force (last exit code 3)"
    assert pointer["refused"] == [{"version": "0.9.1", "sha256": SHA["0.9.1"]}]  # offered again: not taken
    assert pointer["crashes"] is None and pointer["previous"] is None


def test_exits_spread_wider_than_the_window_are_no_crash_loop_and_a_stop_is_no_crash(tmp_path):
    slots = Slots(tmp_path / "updates")
    _confirmed(slots, "0.9.0", tmp_path / "0.9.0")
    _confirmed(slots, "0.9.1", tmp_path / "0.9.1")
    rule = CrashLoop(exits=2, seconds=0.5)
    for _ in range(3):
        assert supervise(slots, _gateway("sys.exit(1)", new="0.9.1"), rule=rule) == 1
        time.sleep(0.7)
    for stop in (signal.SIGTERM, signal.SIGINT):  # systemd stopping the service signals the gateway too
        code = supervise(slots, _gateway(f"import os; os.kill(os.getpid(), {int(stop)}); time.sleep(5)",
                                         new="0.9.1"), rule=CrashLoop(exits=1))
        assert code == -stop
    pointer = slots.read()
    assert (pointer["slot"], pointer["version"], pointer["last"]["status"]) == ("b", "0.9.1", "applied")
    assert len(pointer["crashes"]["at"]) == 1 and pointer["refused"] == []


def _store_at(path: Path, schema: int) -> Path:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {schema}")
    conn.close()
    return path


def test_no_fallback_to_a_version_that_does_not_know_the_stores_schema(tmp_path):
    """0.9.1 migrated the store one schema further than 0.9.0 and the base install know, then crash-loops. Going
    back to either would run code on tables it does not know: the launcher stays (and says why in its log). Once
    the other slot holds a 0.9.0 that knows that schema, it falls back to it."""
    store = _store_at(tmp_path / "gateway.sqlite3", len(MIGRATIONS) + 1)
    assert store_schema(store) == len(MIGRATIONS) + 1
    slots = Slots(tmp_path / "updates")
    _confirmed(slots, "0.9.0", tmp_path / "0.9.0")
    _confirmed(slots, "0.9.1", tmp_path / "0.9.1")
    command, rule = _gateway("sys.exit(1)", new="0.9.1"), CrashLoop(exits=1)
    assert supervise(slots, command, store, rule) == 1
    pointer = slots.read()
    assert (pointer["slot"], pointer["version"], pointer["refused"]) == ("b", "0.9.1", [])
    # 0.9.0 again in slot a, this time knowing one more migration (its own edge.store)
    knows = {"edge/__init__.py": "", "edge/store.py": f"MIGRATIONS = [None] * {len(MIGRATIONS) + 1}\n"}
    (tmp_path / "0.9.0-knows").mkdir()
    assert slots.install(release_wheel(tmp_path / "0.9.0-knows", "0.9.0", knows), "0.9.0") == "a"
    assert supervise(slots, command, store, rule) == 0
    pointer = slots.read()
    assert (pointer["slot"], pointer["version"]) == ("a", "0.9.0") and is_refused(pointer, "0.9.1", SHA["0.9.1"])


def test_the_gateway_refuses_a_store_a_newer_version_migrated_and_says_so(tmp_path):
    store = _store_at(tmp_path / "gateway.sqlite3", len(MIGRATIONS) + 2)
    with pytest.raises(StoreSchemaNewer, match=rf"gateway\.sqlite3 has schema version {len(MIGRATIONS) + 2}, "
                                               rf"this balans knows only up to {len(MIGRATIONS)}: a newer balans"):
        open_database(store)
    assert store_schema(store) == len(MIGRATIONS) + 2  # nothing changed in it


def test_a_trial_written_before_running_time_was_kept_is_not_ended_by_the_wall_clock(tmp_path):
    """A pointer from an older version's switch: a wall-clock deadline long gone (the station was dark), boots,
    no running time. This launcher gives it its whole budget of running, and it passes."""
    slots = Slots(tmp_path / "updates")
    slot = slots.install(release_wheel(tmp_path, "0.9.0"), "0.9.0")
    with slots.changing() as pointer:
        pointer.update(slot=slot, version="0.9.0", previous={"slot": None, "version": "0.1.0"},
                       trial={"version": "0.9.0", "sha256": SHA["0.9.0"], "deadline": time.time() - 3600,
                              "seconds": 600, "boots": 1})
    confirm = (f"from edge.update import Slots; Slots(pathlib.Path({str(slots.root)!r})).confirm('0.9.0')\n"
               "    sys.exit(0)")
    assert supervise(slots, _gateway(confirm)) == 0
    pointer = slots.read()
    assert pointer["last"]["status"] == "applied" and (pointer["slot"], pointer["version"]) == (slot, "0.9.0")
