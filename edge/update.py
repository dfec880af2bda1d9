"""Software updates on the gateway (docs/updates.md): the version the cloud offers in the heartbeat's answer is
fetched and verified with TUF (python-tuf's ngclient), installed into the inactive of two slots, switched to by
an atomic pointer, and kept only once it has passed its health check: this process polled a meter that answered
and the cloud accepted a heartbeat. Otherwise the launcher (edge/launcher.py) or the version itself flips back to
the previous slot and the next heartbeat says ``rolled_back`` and why. The signed targets decide what may be
installed at all (edge/release_channel.py): no withdrawn release, and no older version than the one running unless
that one is withdrawn.

State, under ``<state_dir>/updates``: ``slots/a``, ``slots/b`` (``pip install --no-deps --target`` of a wheel:
the code; the libraries stay those of the base install), ``current.json`` (the pointer), ``root.json`` (the
pinned TUF root: the installer's, or the cloud's signed with the organisation's key), ``metadata/`` and
``downloads/`` (ngclient's).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.durable import write_atomically
from edge.release_channel import (  # the release channel (TUF): edge/release_channel.py
    RELEASE_VERSION,
    UpdateDeclined,
    UpdateFailed,
    fetch_release,
    pin_offered_root,
    pinned_digest,
    release_target,
)

log = logging.getLogger("balans.edge.update")

RESTART_EXIT = 75  # the gateway asks its launcher for a restart into the slot just switched to (EX_TEMPFAIL)
SLOTS = ("a", "b")
MAX_TRIAL_EXITS = 3  # a new version that exits this many times before passing its health check is rolled back
INSTALL_SECONDS = 300
RETRY_SECONDS = 300  # a fetch that failed is tried again after 5 min, then 10, 20 … at most RETRY_MAX_SECONDS
RETRY_MAX_SECONDS = 4 * 3600
REPORT_TEXT = 300  # characters of a reason or version put into the pointer's ``last`` (sent in every heartbeat)
STATE_VARIABLE = "BALANS_UPDATE_STATE"  # set by edge/launcher.py for the gateway: the updates directory it serves
NOT_LAUNCHED = "not under the update launcher (python -m edge.launcher, docs/updates.md): updates not taken"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


class UpdateRefused(Exception):
    """A package TUF verified does not install (pip fails, or it is not balans of that version): those bytes will
    not change, so that version with that SHA-256 is not tried again (``reason`` goes to the cloud)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def report_text(value: Any) -> str:
    """Text safe to carry in every heartbeat: no control characters (the cloud's request guard refuses them and
    would refuse every heartbeat after), at most REPORT_TEXT characters."""
    return _CONTROL.sub(" ", str(value))[:REPORT_TEXT]


def offered(offer: Any) -> tuple[str, str] | None:
    """The heartbeat answer's ``update`` as (version, target) when it has the form the cloud publishes, else None
    (logged): a forged or garbled offer must not reach the pointer."""
    if offer is None:
        return None
    version = offer.get("version") if isinstance(offer, dict) else None
    target = offer.get("target") if isinstance(offer, dict) else None
    if isinstance(version, str) and len(version) <= 40 and RELEASE_VERSION.fullmatch(version) \
            and target == release_target(version):
        return version, target
    log.warning("ignoring an update offer that is not a release's: %s", report_text(repr(offer)))
    return None


def software_version() -> str:
    try:
        return importlib.metadata.version("balans")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def trial_seconds(poll_seconds: int, heartbeat_seconds: int) -> float:
    """How long a new version has to pass its health check: two polls and two heartbeats, at least ten minutes;
    ``BALANS_UPDATE_TRIAL_SECONDS`` overrides it."""
    configured = os.environ.get("BALANS_UPDATE_TRIAL_SECONDS")
    if configured:
        return float(configured)
    return max(600.0, 2.0 * poll_seconds + 2.0 * heartbeat_seconds)


def trial_over(trial: dict[str, Any], unsaved: float = 0.0) -> bool:
    """Whether the version on trial has used its budget: the seconds it has actually been running (``ran``, kept
    by the launcher, plus ``unsaved`` seconds it has not written yet), so a power cut or a reboot spends none of
    it. A trial written before running time was kept has a wall-clock ``deadline`` only."""
    if trial.get("ran") is None:
        return time.time() > float(trial.get("deadline", 0))
    return float(trial["ran"]) + unsaved >= float(trial.get("seconds", 0))


def retry_seconds(failures: int) -> float:
    """How long after its ``failures``-th failed fetch a version is tried again (``BALANS_UPDATE_RETRY_SECONDS``
    sets the first wait)."""
    first = float(os.environ.get("BALANS_UPDATE_RETRY_SECONDS") or RETRY_SECONDS)
    return min(first * 2 ** max(failures - 1, 0), RETRY_MAX_SECONDS)


def _stamp(at: float | None = None) -> str:
    """A UTC time as text, for a report (the heartbeat's canonical JSON carries no floats)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _write_json(path: Path, document: dict[str, Any]) -> None:
    """The pointer is the old one or the new one, never half (edge/durable.py)."""
    write_atomically(path, json.dumps(document, indent=2, sort_keys=True))


def _empty() -> dict[str, Any]:
    return {"slot": None, "version": None, "previous": None, "trial": None, "last": None, "refused": [],
            "retry": None, "sha256": None, "crashes": None}


def is_refused(pointer: dict[str, Any], version: str, sha256: str | None) -> bool:
    """Whether ``version`` (with that SHA-256; None: whatever its bytes) is blocked for good. An entry without a
    SHA-256 blocks every package of its version."""
    return any(entry["version"] == version and entry.get("sha256") in (None, sha256)
               for entry in pointer.get("refused", []))


class Slots:
    """The two install slots and the pointer to the one in force (``slot`` None: the base install). Every change
    of the pointer is a read-modify-write under an flock on ``current.lock`` beside it: the launcher and the
    gateway may both change it."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def pointer_path(self) -> Path:
        return self.root / "current.json"

    def path(self, slot: str) -> Path:
        return self.root / "slots" / slot

    def read(self) -> dict[str, Any]:
        try:
            document = json.loads(self.pointer_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _empty()
        except (OSError, ValueError) as exc:  # a pointer we cannot read: run the base install, say so
            log.error("update pointer %s unreadable (%s): running the base install", self.pointer_path, exc)
            return _empty()
        # a version alone (as written before SHA-256s were kept) blocks every package of that version
        document["refused"] = [entry if isinstance(entry, dict) else {"version": str(entry), "sha256": None}
                               for entry in document.get("refused") or []]
        for key in ("retry", "sha256", "crashes"):
            document.setdefault(key, None)
        return document

    def write(self, document: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write_json(self.pointer_path, document)

    @contextlib.contextmanager
    def changing(self) -> Iterator[dict[str, Any]]:
        """The pointer to change in place, written back on leaving; no other process changes it meanwhile."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "current.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
            pointer = self.read()
            yield pointer
            self.write(pointer)

    def inactive(self) -> str:
        return "b" if self.read().get("slot") == "a" else "a"

    def slot_path(self) -> Path | None:
        """The directory to put first on the gateway's PYTHONPATH, None for the base install."""
        slot = self.read().get("slot")
        return self.path(slot) if slot in SLOTS else None

    def install(self, wheel: Path, version: str) -> str:
        """Install ``wheel`` into the inactive slot (its old contents removed first); the slot's name. Offline: the
        wheel alone, no index, no dependencies (they are the base install's)."""
        slot = self.inactive()
        target = self.path(slot)
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile",
                               "--disable-pip-version-check", "--quiet", "--target", str(target), str(wheel)],
                              capture_output=True, text=True, timeout=INSTALL_SECONDS, check=False)
        if done.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise UpdateRefused(f"pip could not install {wheel.name}: {done.stderr.strip()[-300:]}")
        installed = [p.name for p in target.glob("balans-*.dist-info")]
        if installed != [f"balans-{version}.dist-info"]:
            shutil.rmtree(target, ignore_errors=True)
            raise UpdateRefused(f"{wheel.name} installs {installed or 'no balans'}, not balans {version}")
        return slot

    def switch(self, slot: str, version: str, seconds: float, sha256: str | None = None) -> None:
        """Make ``slot`` (holding ``version``, the package with ``sha256``) the one in force, on trial for
        ``seconds``."""
        with self.changing() as pointer:
            pointer["previous"] = {"slot": pointer.get("slot"), "sha256": pointer.get("sha256"),
                                   "version": pointer.get("version") or software_version()}
            pointer["slot"], pointer["version"], pointer["retry"] = slot, version, None
            pointer["sha256"], pointer["crashes"] = sha256, None
            # ``ran``: seconds of running so far (the launcher adds them); ``deadline``: when the budget ends if
            # it keeps running, moved on by the launcher at each start (versions before ``ran`` read it).
            pointer["trial"] = {"version": version, "sha256": sha256, "seconds": seconds, "ran": 0.0, "exits": 0,
                                "deadline": time.time() + seconds}

    def add_running(self, version: str, seconds: float) -> dict[str, Any] | None:
        """``seconds`` more of running for the trial of ``version``; the trial as it now stands, None (nothing
        done) when no trial of ``version`` is under way (it passed, or was rolled back meanwhile)."""
        with self.changing() as pointer:
            trial = pointer.get("trial")
            if not trial or trial.get("version") != version:
                return None
            trial["ran"] = float(trial.get("ran") or 0.0) + max(seconds, 0.0)
            trial["deadline"] = time.time() + max(float(trial.get("seconds", 0)) - trial["ran"], 0.0)
            return dict(trial)

    def count_exit(self, version: str) -> int:
        """The version on trial exited by itself once more: how many times now (0: no trial of it)."""
        with self.changing() as pointer:
            trial = pointer.get("trial")
            if not trial or trial.get("version") != version:
                return 0
            trial["exits"] = int(trial.get("exits", 0)) + 1
            return trial["exits"]

    def record_crash(self, version: str | None, window: float) -> int:
        """The version in force (no trial) exited abnormally: how many times within the last ``window`` seconds.
        Kept in the pointer, as the launcher itself is restarted by systemd after such an exit."""
        now = time.time()
        with self.changing() as pointer:
            crashes = pointer.get("crashes") or {}
            times = crashes.get("at", []) if crashes.get("version") == version else []
            # a clock set back puts earlier exits in the future: those are not counted
            times = [at for at in times if now - window <= float(at) <= now] + [now]
            pointer["crashes"] = {"version": version, "at": times}
            return len(times)

    def fall_back(self, version: str, to: dict[str, Any], reason: str) -> dict[str, Any] | None:
        """The confirmed ``version`` keeps crashing: back to ``to`` ({slot, version}: the previous slot or the
        base install), that package refused like a failed trial. A compare-and-set like roll_back: None
        (nothing done) unless ``version`` is in force with no trial."""
        with self.changing() as pointer:
            if pointer.get("trial") or pointer.get("version") != version or pointer.get("slot") is None:
                return None
            sha256 = pointer.get("sha256")
            pointer["slot"], pointer["version"] = to.get("slot"), to.get("version")
            pointer["previous"], pointer["sha256"], pointer["crashes"] = None, None, None
            pointer["last"] = {"version": report_text(version), "status": "rolled_back", "slot": pointer["slot"],
                               "reason": report_text(reason), "at": _stamp()}
            if not is_refused(pointer, version, sha256):
                pointer["refused"] = [*pointer["refused"], {"version": version, "sha256": sha256}]
            last = pointer["last"]
        log.error("software %s fell back to %s: %s", version, to.get("version") or "the base install", reason)
        return last

    def confirm(self, expected_version: str) -> dict[str, Any] | None:
        """The version on trial passed its health check: it stays. None (nothing done) when no trial of
        ``expected_version`` is under way."""
        with self.changing() as pointer:
            trial = pointer.get("trial")
            if not trial or trial.get("version") != expected_version:
                return None
            pointer["trial"] = None
            pointer["last"] = {"version": report_text(expected_version), "status": "applied",
                               "slot": pointer.get("slot"), "at": _stamp()}
            return pointer["last"]

    def roll_back(self, expected_version: str, reason: str, block: bool = True) -> dict[str, Any] | None:
        """Back to the previous slot, and (``block``) that package not tried again. A compare-and-set: nothing is
        done (None) unless a trial of ``expected_version`` is under way, so the launcher and the gateway deciding
        it at once roll back once, and never the good version they went back to."""
        with self.changing() as pointer:
            trial = pointer.get("trial")
            if not trial or trial.get("version") != expected_version:
                return None
            previous = pointer.get("previous") or {"slot": None, "version": None}
            pointer["slot"], pointer["version"] = previous.get("slot"), previous.get("version")
            pointer["previous"], pointer["trial"] = None, None
            pointer["sha256"], pointer["crashes"] = previous.get("sha256"), None
            pointer["last"] = {"version": report_text(expected_version), "status": "rolled_back",
                               "slot": pointer["slot"], "reason": report_text(reason), "at": _stamp()}
            if block:
                pointer["refused"] = [*pointer["refused"],
                                      {"version": expected_version, "sha256": trial.get("sha256")}]
            last = pointer["last"]
        log.error("software %s rolled back to %s: %s", expected_version,
                  previous.get("version") or "the base install", reason)
        return last

    def refuse(self, version: str, sha256: str, reason: str) -> dict[str, Any]:
        """The package of ``version`` with ``sha256`` did not install: not tried again."""
        with self.changing() as pointer:
            pointer["last"] = {"version": report_text(version), "status": "refused", "slot": pointer.get("slot"),
                               "reason": report_text(reason), "at": _stamp()}
            if not is_refused(pointer, version, sha256):
                pointer["refused"] = [*pointer["refused"], {"version": version, "sha256": sha256}]
            pointer["retry"] = None
            return pointer["last"]

    def defer(self, version: str, reason: str | None) -> float:
        """A fetch of ``version`` failed (or found a package already refused, ``reason`` None: nothing to
        report): not tried again before the time returned, later after each failure in a row."""
        with self.changing() as pointer:
            retry = pointer.get("retry") or {}
            failures = int(retry.get("failures", 0)) + 1 if retry.get("version") == version else 1
            not_before = time.time() + retry_seconds(failures)
            pointer["retry"] = {"version": version, "failures": failures, "not_before": not_before}
            if reason is not None:
                pointer["last"] = {"version": report_text(version), "status": "refused",
                                   "slot": pointer.get("slot"), "at": _stamp(),
                                   "reason": report_text(f"tried again after {_stamp(not_before)}: {reason}")}
            return not_before

    def decline(self, version: str, reason: str) -> bool:
        """The signed targets say not to install ``version`` (UpdateDeclined): looked at again after
        RETRY_SECONDS, every time (one small metadata fetch; no doubling, so that a withdrawal of the version
        running here is acted on soon). True when the report is new: said once, not at every look."""
        with self.changing() as pointer:
            first = float(os.environ.get("BALANS_UPDATE_RETRY_SECONDS") or RETRY_SECONDS)
            pointer["retry"] = {"version": version, "failures": 1, "not_before": time.time() + first,
                                "declined": True}
            last = pointer.get("last") or {}
            if (last.get("version"), last.get("status"), last.get("reason")) == (
                    report_text(version), "refused", report_text(reason)):
                return False
            pointer["last"] = {"version": report_text(version), "status": "refused", "slot": pointer.get("slot"),
                               "reason": report_text(reason), "at": _stamp()}
            return True

    def forget_refusal(self, version: str) -> bool:
        """The cloud re-offered ``version`` (``again: true``): its refusal here and any wait after a failed fetch
        are dropped. True when there was one. A wait the signed targets decided (decline) stays: a re-offer
        changes nothing they say, and the cloud repeats ``again`` until it hears a new outcome."""
        with self.changing() as pointer:
            kept = [entry for entry in pointer["refused"] if entry["version"] != version]
            retry = pointer.get("retry") or {}
            waiting = retry.get("version") == version and not retry.get("declined")
            dropped = len(kept) != len(pointer["refused"]) or waiting
            pointer["refused"] = kept
            if waiting:
                pointer["retry"] = None
            return dropped

    def retry_due(self, version: str) -> bool:
        retry = self.read().get("retry") or {}
        return retry.get("version") != version or time.time() >= float(retry.get("not_before", 0))


# --- in the running gateway ------------------------------------------------------------------------------------
def request_restart() -> None:
    """Leave with RESTART_EXIT: the launcher starts the gateway again, from the slot now in force."""
    raise SystemExit(RESTART_EXIT)


class UpdateAgent:
    """What the heartbeat loop (edge/remote.py) does about software: report, confirm a trial, take an offer."""

    def __init__(self, gateway, restart=request_restart):
        self.gateway = gateway
        self.slots = Slots(gateway.config.database.parent / "updates")
        self.restart = restart
        # Offers are taken only under edge/launcher.py serving this very updates directory: without it the new
        # slot would never be started, and the version would be rolled back and blocked for nothing.
        self.launched = os.environ.get(STATE_VARIABLE) == str(self.slots.root.resolve())
        if not self.launched:
            log.warning("software updates: %s", NOT_LAUNCHED)
        trial = self.slots.read().get("trial")
        # Started while a trial is under way, yet not running the version on trial: nothing put the slot on our
        # path, so the trial could never pass.
        self.stranded = bool(trial) and trial.get("version") != software_version()

    def report(self) -> dict[str, Any]:
        """The heartbeat's ``update``: the slot in force, a trial under way, the outcome of the last update."""
        pointer = self.slots.read()
        trial = pointer.get("trial")
        report = {"slot": pointer.get("slot") or "base", "version": software_version(),
                  "trial": trial.get("version") if trial else None, "last": pointer.get("last"),
                  "root": pinned_digest(self.slots.root)}
        if not self.launched:
            report["note"] = NOT_LAUNCHED
        return report

    def healthy(self) -> bool:
        """This process polled, and at least one meter answered (or none is configured)."""
        meters = self.gateway.meters.values()
        return self.gateway.cycles > 0 and (not meters or any(c.online for c in meters)) \
            and self.gateway.refused is None

    async def after_heartbeat(self, answer: dict[str, Any]) -> bool:
        """Called once the cloud accepted a heartbeat; True when the next heartbeat should go now (an outcome to
        report). A fault here is logged and must not stop the heartbeat (the restart's SystemExit goes through)."""
        try:
            return await self._after_heartbeat(answer)
        except Exception:
            log.exception("software update step failed; tried again at the next heartbeat")
            return False

    async def _after_heartbeat(self, answer: dict[str, Any]) -> bool:
        if answer.get("release_root") is not None:  # sent while we report no pinned root
            pin_offered_root(self.slots.root, answer["release_root"], self.gateway.config.org_key_path)
        pointer = self.slots.read()
        trial = pointer.get("trial")
        if trial:
            version = trial.get("version")
            if self.stranded:
                # Under the launcher the slot did not load: that package is broken. Outside it, nothing is wrong
                # with the package: back to the previous slot, nothing blocked.
                self.slots.roll_back(version, f"the gateway was not started from slot {pointer.get('slot')}: run "
                                     "it under python -m edge.launcher (docs/updates.md)", block=self.launched)
                self.stranded = False
                return True
            if version != software_version():
                return False  # the launcher has not restarted us into the new slot yet
            if self.healthy():
                if self.slots.confirm(version) is not None:
                    log.info("software %s passed its health check (slot %s)", version, pointer.get("slot"))
                return True
            if trial_over(trial):
                self.slots.roll_back(version, f"health check not passed within {trial.get('seconds', 0):.0f} s "
                                     f"of running (polls {self.gateway.cycles}, meters answering "
                                     f"{sum(1 for c in self.gateway.meters.values() if c.online)})")
                self.restart()
            return False
        offer = answer.get("update")
        found = offered(offer)
        if found is None or not self.launched:
            return False
        version, target = found
        if offer.get("again") is True and self.slots.forget_refusal(version):
            # the operator re-offered it (the cause fixed on site): the cloud says so until it hears a new
            # outcome of this version, which the try below gives it
            log.warning("software %s offered again by the cloud: its refusal here is dropped, trying it once more",
                        version)
            pointer = self.slots.read()
        if version == software_version() or is_refused(pointer, version, None) or not self.slots.retry_due(version):
            return False
        return await self.take(version, target)

    async def take(self, version: str, target: str) -> bool:
        config = self.gateway.config
        log.info("software %s offered: fetching %s", version, target)

        def refused(sha256: str) -> bool:
            return is_refused(self.slots.read(), version, sha256)

        try:
            release = await asyncio.to_thread(fetch_release, self.slots.root, config.cloud_url, target, version,
                                              refused, software_version())
        except UpdateDeclined as exc:
            log.warning("software %s not taken: %s", version, exc.reason)
            return self.slots.decline(version, exc.reason)
        except UpdateFailed as exc:
            not_before = self.slots.defer(version, exc.reason)
            log.warning("software %s not fetched (%s): tried again after %s", version, exc.reason,
                        _stamp(not_before))
            return True
        if release is None:  # the very package refused before: ask the channel again later, say nothing new
            self.slots.defer(version, None)
            return False
        try:
            slot = await asyncio.to_thread(self.slots.install, release.path, version)
        except UpdateRefused as exc:
            log.error("software %s (sha256 %s) refused: %s", version, release.sha256, exc.reason)
            self.slots.refuse(version, release.sha256, exc.reason)
            return True
        except (OSError, subprocess.SubprocessError) as exc:  # a full disk, pip timed out: not the package's fault
            self.slots.defer(version, f"not installed: {type(exc).__name__}: {exc}")
            return True
        self.slots.switch(slot, version, trial_seconds(config.poll_seconds, config.heartbeat_seconds),
                          release.sha256)
        log.info("software %s installed in slot %s: restarting into it", version, slot)
        self.restart()
        return False
