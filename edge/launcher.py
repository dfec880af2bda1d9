"""The gateway's launcher (docs/updates.md): runs ``balans edge run`` from the slot the update pointer names, rolls
a new version back when it keeps crashing or has not passed its health check within its running-time budget, and
falls back from a confirmed version that later crash-loops. It is part of the base install, never of a slot, so a
broken release cannot break the way back.

    python -m edge.launcher --config /etc/balans/gateway.toml run -- balans edge run --config /etc/balans/gateway.toml
    python -m edge.launcher --config /etc/balans/gateway.toml trust root.json   # the channel's root, at install

``--config`` finds the state directory and the store the way the gateway does (its database and that database's
folder); ``--state DIR`` names the folder (the store is then ``--database``, default ``DIR/gateway.sqlite3``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edge.config import ConfigError, load_config
from edge.update import MAX_TRIAL_EXITS, RESTART_EXIT, STATE_VARIABLE, Slots, trial_over

log = logging.getLogger("balans.edge.launcher")

WATCH_SECONDS = 0.5
STOP_SECONDS = 20  # SIGTERM, then this long before SIGKILL
SAVE_SECONDS = 5.0  # a trial's running time is written this often (at most a tenth of the budget): a power cut
# loses at most that much of it, in the new version's favour, for few writes to the SD card
PROBE_SECONDS = 60
# Exits that are a stop, not a crash: systemd's SIGTERM reaches the gateway's process group too.
STOPPED = {0, RESTART_EXIT, -signal.SIGTERM, -signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGINT}
# What the launcher asks a slot's code (or the base install's): its balans version and how many store migrations
# it knows — the store schema it can run on (edge/store.py's MIGRATIONS, in every version so far).
PROBE = "import importlib.metadata as m, edge.store as s; print(m.version('balans'), len(s.MIGRATIONS))"


@dataclass(frozen=True)
class CrashLoop:
    """When a confirmed version is taken for broken: ``exits`` abnormal exits within ``seconds``
    (``BALANS_UPDATE_FALLBACK_EXITS``, default 5; ``BALANS_UPDATE_FALLBACK_SECONDS``, default 600)."""

    exits: int = 5
    seconds: float = 600.0

    @classmethod
    def from_environment(cls, environ=os.environ) -> CrashLoop:
        values = {}
        for key, field, kind in (("BALANS_UPDATE_FALLBACK_EXITS", "exits", int),
                                 ("BALANS_UPDATE_FALLBACK_SECONDS", "seconds", float)):
            text = environ.get(key)
            if not text:
                continue
            try:
                values[field] = kind(text)
            except ValueError:
                raise ConfigError(f"{key}={text!r}: give a positive number ({field})") from None
            if values[field] <= 0:
                raise ConfigError(f"{key}={text!r}: give a positive number ({field})")
        return cls(**values)


def _environment(slots: Slots, slot: Path | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env[STATE_VARIABLE] = str(slots.root.resolve())
    if slot is not None:
        env["PYTHONPATH"] = str(slot)
    return env


def child_environment(slots: Slots) -> dict[str, str]:
    """The gateway's environment: the slot in force first on its path (its code and its balans version), then
    the base install's libraries; STATE_VARIABLE tells the gateway which updates directory this launcher serves
    (it takes offers only when that is its own)."""
    return _environment(slots, slots.slot_path())


def store_schema(store: Path | None) -> int:
    """The schema version of the gateway's store, read-only (the migrations' ``PRAGMA user_version``); 0 when
    there is no store yet."""
    if store is None or not Path(store).exists():
        return 0
    conn = sqlite3.connect(f"{Path(store).resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def probe(slots: Slots, slot: str | None) -> tuple[str, int] | None:
    """(balans version, store schema it knows) of the code in ``slot`` (None: the base install), asked of that
    code itself; None when it does not even import."""
    try:
        done = subprocess.run([sys.executable, "-P", "-c", PROBE], capture_output=True, text=True, check=False,
                              env=_environment(slots, slots.path(slot) if slot else None), timeout=PROBE_SECONDS)
    except (OSError, subprocess.SubprocessError) as exc:
        log.error("cannot ask the code of %s what it is: %s", slot or "the base install", exc)
        return None
    words = done.stdout.split()
    if done.returncode != 0 or len(words) != 2 or not words[1].isdigit():
        log.error("the code of %s does not load: %s", slot or "the base install", done.stderr.strip()[-300:])
        return None
    return words[0], int(words[1])


def fallback_target(slots: Slots, store: Path | None) -> tuple[dict | None, str]:
    """Where a crash-looping confirmed version goes back to: the previous slot, else the base install — the first
    whose code loads, is the version the pointer says, and knows the store's schema (an older version on a store a
    newer one migrated would run on tables it does not know). (None, why) when none will do."""
    pointer = slots.read()
    schema = store_schema(store)
    candidates = []
    previous = pointer.get("previous")
    if previous and previous.get("slot") != pointer.get("slot"):
        candidates.append({"slot": previous.get("slot"), "version": previous.get("version")})
    if not any(c["slot"] is None for c in candidates):
        candidates.append({"slot": None, "version": None})
    refusals = []
    for candidate in candidates:
        where = f"slot {candidate['slot']}" if candidate["slot"] else "the base install"
        found = probe(slots, candidate["slot"])
        if found is None:
            refusals.append(f"{where} does not load")
            continue
        version, knows = found
        if candidate["slot"] and version != candidate["version"]:
            refusals.append(f"{where} holds {version}, not {candidate['version']}")
        elif knows < schema:
            refusals.append(f"{where} ({version}) knows store schema {knows}, the store is at {schema}")
        else:
            return {"slot": candidate["slot"], "version": version}, ""
    return None, "; ".join(refusals)


class RunningTime:
    """The running time of the version on trial while its process runs (time.monotonic(): a clock set, a reboot
    or a power cut adds nothing), added to the pointer's ``ran`` every SAVE_SECONDS and when it stops."""

    def __init__(self, slots: Slots):
        self.slots = slots
        self.trial = slots.read().get("trial")
        self.version = self.trial.get("version") if self.trial else None
        seconds = float(self.trial.get("seconds", 0)) if self.trial else 0.0
        self.save_every = max(min(SAVE_SECONDS, seconds / 10), WATCH_SECONDS)
        self.unsaved = 0.0
        self.mark = time.monotonic()

    def _advance(self) -> None:
        now = time.monotonic()
        self.unsaved, self.mark = self.unsaved + now - self.mark, now

    def tick(self) -> None:
        self._advance()
        if self.version is not None and self.unsaved >= self.save_every:
            self.save()

    def save(self) -> None:
        self._advance()
        if self.version is None:
            return
        self.trial = self.slots.add_running(self.version, self.unsaved)
        self.unsaved = 0.0
        if self.trial is None:  # it passed its health check, or the gateway rolled it back itself
            self.version = None

    def over(self) -> bool:
        """Its budget is used up; read from the pointer first, as the gateway may have confirmed it meanwhile."""
        if self.version is None or not trial_over(self.trial, self.unsaved):
            return False
        self.save()
        return self.version is not None and trial_over(self.trial)


def _stop(child: subprocess.Popen) -> None:
    child.terminate()
    try:
        child.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _watch(child: subprocess.Popen, clock: RunningTime) -> int | None:
    """Wait for the child; None when it was stopped for using up its trial's running time."""
    while True:
        try:
            return child.wait(WATCH_SECONDS)
        except subprocess.TimeoutExpired:
            clock.tick()
            if clock.over():
                _stop(child)
                return None


def _budget(trial: dict) -> str:
    return f"health check not passed within {float(trial.get('seconds', 0)):.0f} s of running"


def _crashed(slots: Slots, store: Path | None, rule: CrashLoop, version: str | None, code: int) -> bool:
    """The confirmed ``version`` exited abnormally with ``code``: True when that made a crash loop and the pointer
    now names the version to fall back to."""
    count = slots.record_crash(version, rule.seconds)
    log.error("software %s exited with %s (%d times within %.0f s)", version, code, count, rule.seconds)
    if count < rule.exits:
        return False
    target, why_not = fallback_target(slots, store)
    if target is None:
        log.error("software %s keeps crashing, but there is nothing to fall back to: %s", version, why_not)
        return False
    reason = f"exited {count} times within {rule.seconds:.0f} s while in force (last exit code {code})"
    return slots.fall_back(version, target, reason) is not None


def supervise(slots: Slots, command: list[str], store: Path | None = None, rule: CrashLoop | None = None) -> int:
    """Run ``command`` until it exits for good (its exit code); restart it on RESTART_EXIT and while a trial is
    under way; roll a trial back when its running time is used up or it exited MAX_TRIAL_EXITS times; fall back
    from a version in force (in a slot) that exits abnormally ``rule.exits`` times within ``rule.seconds``.
    ``store``: the gateway's database, whose schema a version fallen back to must know."""
    rule = rule or CrashLoop()
    while True:
        pointer = slots.read()
        trial = pointer.get("trial")
        if trial:
            # from its running time so far (none yet: a trial written by a version before running time was kept),
            # the wall-clock deadline moved on for versions that still read it
            trial = slots.add_running(trial["version"], 0.0) or trial
            if trial_over(trial):
                slots.roll_back(trial["version"], _budget(trial))
                continue
            if int(trial.get("exits", 0)) >= MAX_TRIAL_EXITS:
                slots.roll_back(trial["version"], f"exited {trial['exits']} times before passing its health check")
                continue
        log.info("starting %s from %s", pointer.get("version") or "the base install",
                 slots.slot_path() or "the base install")
        child = subprocess.Popen(command, env=child_environment(slots))
        clock = RunningTime(slots)
        try:
            code = _watch(child, clock)
        finally:  # the launcher told to stop (SIGTERM from systemd) stops the gateway with it
            if child.poll() is None:
                _stop(child)
            clock.save()
        if code is None:
            trial = slots.read().get("trial")
            if trial:  # the gateway may have rolled it back itself meanwhile: then nothing more to do
                slots.roll_back(trial["version"], _budget(trial))
            continue
        if code == RESTART_EXIT:
            continue
        trial = slots.read().get("trial")
        if trial:
            log.error("software on trial exited with %s", code)
            slots.count_exit(trial["version"])
            continue
        if code not in STOPPED and pointer.get("slot") is not None \
                and _crashed(slots, store, rule, pointer.get("version"), code):
            continue
        return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.launcher", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="the gateway's configuration: its database's folder is the state")
    where.add_argument("--state", type=Path, help="the gateway's state directory (its database's folder)")
    parser.add_argument("--database", type=Path, help="with --state: the gateway's store (default "
                                                      "STATE/gateway.sqlite3)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the gateway from the slot in force: run -- balans edge run …")
    run.add_argument("gateway", nargs=argparse.REMAINDER)
    trust = commands.add_parser("trust", help="install the release channel's root (balans cloud release root)")
    trust.add_argument("root", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.config is not None:
        if args.database is not None:
            parser.error("--database: the store is the one --config names")
        try:
            store = load_config(args.config).database  # as edge/update.py's UpdateAgent finds it
        except ConfigError as exc:
            parser.error(f"--config: {exc}")
        state = store.parent
    else:
        state = args.state
        store = args.database or state / "gateway.sqlite3"
    try:
        rule = CrashLoop.from_environment()
    except ConfigError as exc:
        parser.error(str(exc))
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
    return supervise(slots, gateway, store, rule)


if __name__ == "__main__":
    sys.exit(main())
