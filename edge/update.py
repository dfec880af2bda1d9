"""Software updates on the gateway (docs/updates.md): the version the cloud offers in the heartbeat's answer is
fetched and verified with TUF (python-tuf's ngclient), installed into the inactive of two slots, switched to by
an atomic pointer, and kept only once it has passed its health check: this process polled a meter that answered
and the cloud accepted a heartbeat. Otherwise the launcher (edge/launcher.py) or the version itself flips back to
the previous slot and the next heartbeat says ``rolled_back`` and why.

State, under ``<state_dir>/updates``: ``slots/a``, ``slots/b`` (``pip install --no-deps --target`` of a wheel:
the code; the libraries stay those of the base install), ``current.json`` (the pointer), ``root.json`` (the
trusted TUF root the installer put there), ``metadata/`` and ``downloads/`` (ngclient's).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tuf.api.exceptions import DownloadError, DownloadLengthMismatchError, RepositoryError
from tuf.ngclient import Updater

from edge.durable import write_atomically

log = logging.getLogger("balans.edge.update")

RESTART_EXIT = 75  # the gateway asks its launcher for a restart into the slot just switched to (EX_TEMPFAIL)
SLOTS = ("a", "b")
MAX_TRIAL_BOOTS = 3  # a new version that exits this many times before passing its health check is rolled back
INSTALL_SECONDS = 300


class UpdateRefused(Exception):
    """The offered release did not verify or install; it is not tried again (``reason`` goes to the cloud)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


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


def _stamp() -> str:
    """Now, for a report: a UTC time as text (the heartbeat's canonical JSON carries no floats)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _write_json(path: Path, document: dict[str, Any]) -> None:
    """The pointer is the old one or the new one, never half (edge/durable.py)."""
    write_atomically(path, json.dumps(document, indent=2, sort_keys=True))


class Slots:
    """The two install slots and the pointer to the one in force (``slot`` None: the base install)."""

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
            return {"slot": None, "version": None, "previous": None, "trial": None, "last": None, "refused": []}
        except (OSError, ValueError) as exc:  # a pointer we cannot read: run the base install, say so
            log.error("update pointer %s unreadable (%s): running the base install", self.pointer_path, exc)
            return {"slot": None, "version": None, "previous": None, "trial": None, "last": None, "refused": []}
        document.setdefault("refused", [])
        return document

    def write(self, document: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write_json(self.pointer_path, document)

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

    def switch(self, slot: str, version: str, seconds: float) -> None:
        """Make ``slot`` (holding ``version``) the one in force, on trial for ``seconds``."""
        pointer = self.read()
        pointer["previous"] = {"slot": pointer.get("slot"), "version": pointer.get("version") or software_version()}
        pointer["slot"], pointer["version"] = slot, version
        pointer["trial"] = {"version": version, "deadline": time.time() + seconds, "seconds": seconds, "boots": 0}
        self.write(pointer)

    def count_boot(self) -> int:
        pointer = self.read()
        pointer["trial"]["boots"] = int(pointer["trial"].get("boots", 0)) + 1
        self.write(pointer)
        return pointer["trial"]["boots"]

    def confirm(self) -> dict[str, Any]:
        """The version on trial passed its health check: it stays."""
        pointer = self.read()
        trial = pointer.pop("trial", None) or {}
        pointer["trial"] = None
        pointer["last"] = {"version": trial.get("version", pointer.get("version")), "status": "applied",
                           "slot": pointer.get("slot"), "at": _stamp()}
        self.write(pointer)
        return pointer["last"]

    def roll_back(self, reason: str) -> dict[str, Any]:
        """Back to the previous slot; the version is not tried again."""
        pointer = self.read()
        failed = (pointer.get("trial") or {}).get("version") or pointer.get("version")
        previous = pointer.get("previous") or {"slot": None, "version": None}
        pointer["slot"], pointer["version"] = previous.get("slot"), previous.get("version")
        pointer["previous"], pointer["trial"] = None, None
        pointer["last"] = {"version": failed, "status": "rolled_back", "slot": pointer["slot"], "reason": reason,
                           "at": _stamp()}
        pointer["refused"] = sorted(set(pointer.get("refused", [])) | {failed})
        self.write(pointer)
        log.error("software %s rolled back to %s: %s", failed, previous.get("version") or "the base install", reason)
        return pointer["last"]

    def refuse(self, version: str, reason: str) -> dict[str, Any]:
        pointer = self.read()
        pointer["last"] = {"version": version, "status": "refused", "slot": pointer.get("slot"), "reason": reason,
                           "at": _stamp()}
        pointer["refused"] = sorted(set(pointer.get("refused", [])) | {version})
        self.write(pointer)
        return pointer["last"]


# --- the release channel ---------------------------------------------------------------------------------------
def _trusted_root(root: Path, cloud_url: str) -> bytes | None:
    """The root to start from on the first update: the installer's ``root.json`` or, failing that, version 1 from
    the cloud the gateway already trusts with its enrolment (trust on first use, logged). None once ngclient
    keeps its own (it then follows the signed chain of roots)."""
    if (root / "metadata" / "root.json").exists():
        return None
    installed = root / "root.json"
    if installed.exists():
        return installed.read_bytes()
    log.warning("no %s: trusting the release channel's first root from %s", installed, cloud_url)
    try:
        with urllib.request.urlopen(f"{cloud_url}/api/v1/updates/metadata/1.root.json", timeout=30) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"cannot fetch the first root: {exc}") from exc


def fetch_release(root: Path, cloud_url: str, target: str) -> Path:
    """Download ``target`` through TUF and return its verified file. UpdateRefused when the metadata or the file
    does not verify (a wrong key, a tampered or unlisted file, expired metadata); DownloadError when the link
    failed (tried again at the next heartbeat)."""
    for directory in ("metadata", "downloads"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    try:
        bootstrap = _trusted_root(root, cloud_url)
        updater = Updater(metadata_dir=str(root / "metadata"),
                          metadata_base_url=f"{cloud_url}/api/v1/updates/metadata/",
                          target_dir=str(root / "downloads"), target_base_url=f"{cloud_url}/api/v1/updates/targets/",
                          bootstrap=bootstrap)
        updater.refresh()
        info = updater.get_targetinfo(target)
        if info is None:
            raise UpdateRefused(f"{target} is not in the release channel's signed targets")
        cached = updater.find_cached_target(info)
        return Path(cached or updater.download_target(info))
    except (RepositoryError, DownloadLengthMismatchError) as exc:  # a hash or length mismatch of the file too
        raise UpdateRefused(f"the release channel did not verify: {type(exc).__name__}: {exc}") from exc


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
        trial = self.slots.read().get("trial")
        # Started while a trial is under way, yet not running the version on trial: nothing put the slot on our
        # path (the gateway runs without edge.launcher), so the trial could never pass.
        self.stranded = bool(trial) and trial.get("version") != software_version()

    def report(self) -> dict[str, Any]:
        """The heartbeat's ``update``: the slot in force, a trial under way, the outcome of the last update."""
        pointer = self.slots.read()
        trial = pointer.get("trial")
        return {"slot": pointer.get("slot") or "base", "version": software_version(),
                "trial": trial.get("version") if trial else None, "last": pointer.get("last")}

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
        pointer = self.slots.read()
        trial = pointer.get("trial")
        if trial:
            if self.stranded:
                self.slots.roll_back(f"the gateway was not started from slot {pointer.get('slot')}: run it under "
                                     "python -m edge.launcher (docs/updates.md)")
                self.stranded = False
                return True
            if trial.get("version") != software_version():
                return False  # the launcher has not restarted us into the new slot yet
            if self.healthy():
                self.slots.confirm()
                log.info("software %s passed its health check (slot %s)", trial["version"], pointer.get("slot"))
                return True
            if time.time() > float(trial.get("deadline", 0)):
                self.slots.roll_back(f"health check not passed within {trial.get('seconds', 0):.0f} s "
                                     f"(polls {self.gateway.cycles}, meters answering "
                                     f"{sum(1 for c in self.gateway.meters.values() if c.online)})")
                self.restart()
            return False
        offer = answer.get("update")
        if not isinstance(offer, dict) or not isinstance(offer.get("version"), str) \
                or not isinstance(offer.get("target"), str):
            return False
        version = offer["version"]
        if version == software_version() or version in pointer.get("refused", []):
            return False
        return await self.take(version, offer["target"])

    async def take(self, version: str, target: str) -> bool:
        config = self.gateway.config
        log.info("software %s offered: fetching %s", version, target)
        try:
            wheel = await asyncio.to_thread(fetch_release, self.slots.root, config.cloud_url, target)
            slot = await asyncio.to_thread(self.slots.install, wheel, version)
        except UpdateRefused as exc:
            log.error("software %s refused: %s", version, exc.reason)
            self.slots.refuse(version, exc.reason)
            return True
        except (DownloadError, OSError, subprocess.SubprocessError) as exc:
            log.warning("software %s not fetched this time: %s", version, exc)
            return False
        self.slots.switch(slot, version, trial_seconds(config.poll_seconds, config.heartbeat_seconds))
        log.info("software %s installed in slot %s: restarting into it", version, slot)
        self.restart()
        return False
