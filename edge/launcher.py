"""The gateway's launcher (docs/updates.md): runs ``balans edge run`` from the slot the update pointer names, and
rolls a new version back when it keeps crashing or has not passed its health check by its deadline. It is part of
the base install, never of a slot, so a broken release cannot break the way back.

    python -m edge.launcher --config /etc/balans/gateway.toml run -- balans edge run --config /etc/balans/gateway.toml
    python -m edge.launcher --config /etc/balans/gateway.toml trust root.json   # the channel's root, at install

``--config`` finds the state directory the way the gateway does (its database's folder); ``--state DIR`` names it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.config import ConfigError, load_config
from edge.update import MAX_TRIAL_BOOTS, RESTART_EXIT, STATE_VARIABLE, Slots

log = logging.getLogger("balans.edge.launcher")

WATCH_SECONDS = 0.5
STOP_SECONDS = 20  # SIGTERM, then this long before SIGKILL


def child_environment(slots: Slots) -> dict[str, str]:
    """The gateway's environment: the slot in force first on its path (its code and its balans version), then
    the base install's libraries; STATE_VARIABLE tells the gateway which updates directory this launcher serves
    (it takes offers only when that is its own)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env[STATE_VARIABLE] = str(slots.root.resolve())
    slot = slots.slot_path()
    if slot is not None:
        env["PYTHONPATH"] = str(slot)
    return env


def _stop(child: subprocess.Popen) -> None:
    child.terminate()
    try:
        child.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _watch(child: subprocess.Popen, slots: Slots) -> int | None:
    """Wait for the child; None when it was stopped for missing its trial's deadline."""
    while True:
        try:
            return child.wait(WATCH_SECONDS)
        except subprocess.TimeoutExpired:
            trial = slots.read().get("trial")
            if trial and time.time() > float(trial.get("deadline", 0)):
                _stop(child)
                return None


def supervise(slots: Slots, command: list[str]) -> int:
    """Run ``command`` until it exits for good (its exit code); restart it on RESTART_EXIT and while a trial is
    under way; roll a trial back when the deadline passes or it crashed MAX_TRIAL_BOOTS times."""
    while True:
        trial = slots.read().get("trial")
        if trial:
            if time.time() > float(trial.get("deadline", 0)):
                slots.roll_back(trial["version"], f"health check not passed within {trial.get('seconds', 0):.0f} s")
                continue
            if int(trial.get("boots", 0)) >= MAX_TRIAL_BOOTS:
                slots.roll_back(trial["version"], f"exited {trial['boots']} times before passing its health check")
                continue
            slots.count_boot()
        pointer = slots.read()
        log.info("starting %s from %s", pointer.get("version") or "the base install",
                 slots.slot_path() or "the base install")
        child = subprocess.Popen(command, env=child_environment(slots))
        try:
            code = _watch(child, slots)
        finally:  # the launcher told to stop (SIGTERM from systemd) stops the gateway with it
            if child.poll() is None:
                _stop(child)
        if code is None:
            trial = slots.read().get("trial")
            if trial:  # the gateway may have rolled it back itself meanwhile: then nothing more to do
                slots.roll_back(trial["version"], f"health check not passed within {trial.get('seconds', 0):.0f} s")
            continue
        if code == RESTART_EXIT:
            continue
        if slots.read().get("trial"):
            log.error("software on trial exited with %s", code)
            continue
        return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.launcher", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="the gateway's configuration: its database's folder is the state")
    where.add_argument("--state", type=Path, help="the gateway's state directory (its database's folder)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the gateway from the slot in force: run -- balans edge run …")
    run.add_argument("gateway", nargs=argparse.REMAINDER)
    trust = commands.add_parser("trust", help="install the release channel's root (balans cloud release root)")
    trust.add_argument("root", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.config is not None:
        try:
            state = load_config(args.config).database.parent  # as edge/update.py's UpdateAgent finds it
        except ConfigError as exc:
            parser.error(f"--config: {exc}")
    else:
        state = args.state
    slots = Slots(state / "updates")
    if args.command == "trust":
        slots.root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.root, slots.root / "root.json")
        print(f"release channel root installed in {slots.root / 'root.json'}")
        return 0
    gateway = args.gateway[1:] if args.gateway[:1] == ["--"] else args.gateway
    if not gateway:
        parser.error("run: give the gateway's command after --")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    return supervise(slots, gateway)


if __name__ == "__main__":
    sys.exit(main())
