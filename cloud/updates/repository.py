"""The signed release channel on disk: a TUF repository (root, targets, snapshot, timestamp) built and signed with
python-tuf's metadata API, and the release keys (docs/updates.md).

Root and targets are signed by the operator's offline keys, kept in files the operator names and brought to the
cloud only to publish; snapshot and timestamp by online keys in the cloud's ``updates/keys``, so the cloud can
keep the channel fresh (re-sign an expiring timestamp) without the offline keys, and a stolen cloud cannot
publish a package: that takes the targets key.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from cloud.updates.signing import (
    EXPIRY,
    Change,
    ReleaseError,
    check_root,
    check_targets,
    entry_version,
    is_withdrawn,
    load_signer,
    read_metadata,
    sign_release,
    sign_renewal,
    sign_withdrawal,
    write_key,
)
from cloud.updates.signing import now as _now

__all__ = ["EXPIRY", "ReleaseError", "load_signer"]  # also where the rest of cloud/updates and tests find them
REFRESH_BEFORE = {"snapshot": timedelta(days=2), "timestamp": timedelta(hours=12)}
WARN_BEFORE = {"targets": timedelta(days=30), "root": timedelta(days=60)}  # release status and /admin/updates
OFFLINE_ROLES = ("root", "targets")
ONLINE_ROLES = ("snapshot", "timestamp")
_LOCK = threading.Lock()  # one writer of the metadata files in this process (publish, refresh) …
_WITHDRAWN: dict[Path, tuple[tuple[int, int, int], frozenset[str]]] = {}  # targets.json's stat → its withdrawals


@contextlib.contextmanager
def _writing(channel: Channel):
    """… and across processes (several app workers, a publish from the shell): a lock file beside the keys."""
    channel.base.mkdir(parents=True, exist_ok=True)
    with _LOCK, open(channel.base / "write.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Channel:
    """Where one cloud keeps its release channel: ``<base>/repository/{metadata,targets}`` and the online keys
    in ``<base>/keys``."""

    base: Path

    @property
    def metadata(self) -> Path:
        return self.base / "repository" / "metadata"

    @property
    def targets(self) -> Path:
        return self.base / "repository" / "targets"

    @property
    def keys(self) -> Path:
        return self.base / "keys"

    def online_key(self, role: str) -> Path:
        return self.keys / f"{role}.pem"

    @property
    def ready(self) -> bool:
        return (self.metadata / "root.json").exists()


def channel_for(config, instance_path: str) -> Channel:
    """An app's release channel: ``UPDATES_DIR`` (``BALANS_UPDATES_DIR``) when set, else ``<instance>/updates``."""
    configured = config.get("UPDATES_DIR")
    return Channel(Path(configured) if configured else Path(instance_path) / "updates")


def _save(channel: Channel, metadata: Metadata, *names: str) -> None:
    """Write each file by rename: a gateway fetching meanwhile gets the old file or the new one, never half."""
    serializer = JSONSerializer(compact=False)
    for name in names:
        path = channel.metadata / name
        temporary = path.with_name(path.name + ".tmp")
        metadata.to_file(str(temporary), serializer)
        os.replace(temporary, path)


def _load(channel: Channel, role: str) -> Metadata:
    try:
        return Metadata.from_file(str(channel.metadata / f"{role}.json"))
    except FileNotFoundError as exc:
        raise ReleaseError(f"the release channel has no {role} metadata: run `balans cloud release init-keys` "
                           "first", "channel") from exc


def init_keys(channel: Channel, offline_dir: Path, passphrase: bytes | None = None) -> dict[str, str]:
    """Make the four release keys (root and targets into ``offline_dir``, encrypted with ``passphrase`` when
    given; snapshot and timestamp into the cloud) and version 1 of every metadata file; the key ids, for the
    operator's records."""
    if channel.ready:
        raise ReleaseError(f"{channel.metadata} already holds a release channel", "channel")
    offline_dir = Path(offline_dir)
    signers = {role: write_key(offline_dir / f"{role}.pem", passphrase) for role in OFFLINE_ROLES}
    signers |= {role: write_key(channel.online_key(role)) for role in ONLINE_ROLES}
    channel.metadata.mkdir(parents=True, exist_ok=True)
    channel.targets.mkdir(parents=True, exist_ok=True)
    now = _now()
    # Without consistent snapshots the gateway asks for snapshot.json and targets.json by name; the files are
    # replaced by rename, one at a time, and a gateway that read a mix retries at its next heartbeat.
    root = Root(expires=now + EXPIRY["root"], consistent_snapshot=False)
    for role, signer in signers.items():
        root.add_key(signer.public_key, role)
    root_md = Metadata(root)
    root_md.sign(signers["root"])
    _save(channel, root_md, "1.root.json", "root.json")
    targets = Metadata(Targets(expires=now + EXPIRY["targets"]))
    targets.sign(signers["targets"])
    _save(channel, targets, "targets.json")
    _resign_online(channel, targets_version=1, now=now)
    return {role: signer.public_key.keyid for role, signer in signers.items()}


def _resign_online(channel: Channel, targets_version: int, now: datetime) -> None:
    snapshot_path = channel.metadata / "snapshot.json"
    if snapshot_path.exists():
        snapshot = _load(channel, "snapshot")
        snapshot.signed.version += 1
    else:
        snapshot = Metadata(Snapshot())
    snapshot.signed.meta["targets.json"] = MetaFile(version=targets_version)
    snapshot.signed.expires = now + EXPIRY["snapshot"]
    snapshot.signatures.clear()
    snapshot.sign(load_signer(channel.online_key("snapshot")))
    _save(channel, snapshot, "snapshot.json")
    timestamp_path = channel.metadata / "timestamp.json"
    if timestamp_path.exists():
        timestamp = _load(channel, "timestamp")
        timestamp.signed.version += 1
    else:
        timestamp = Metadata(Timestamp())
    timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
    timestamp.signed.expires = now + EXPIRY["timestamp"]
    timestamp.signatures.clear()
    timestamp.sign(load_signer(channel.online_key("timestamp")))
    _save(channel, timestamp, "timestamp.json")


def _channel_key(channel: Channel, signer: CryptoSigner, role: str, path: Path) -> None:
    if signer.public_key.keyid not in _load(channel, "root").signed.roles[role].keyids:
        raise ReleaseError(f"{path} is not the channel's {role} key", f"{role}-key")


def _install_targets(channel: Channel, targets: Metadata, change: Change, wheel: Path | None = None) -> None:
    """Put checked targets metadata in force: the package first (a gateway never sees an entry without its
    file), then targets.json, then snapshot and timestamp re-signed with the online keys. Under _writing."""
    if change.added:
        channel.targets.mkdir(parents=True, exist_ok=True)
        destination = channel.targets / change.added
        shutil.copyfile(wheel, destination.with_name(destination.name + ".tmp"))
        os.replace(destination.with_name(destination.name + ".tmp"), destination)
    _save(channel, targets, "targets.json")
    _resign_online(channel, targets.signed.version, _now())


def publish(channel: Channel, wheel: Path, version: str, targets_key: Path,
            passphrase: bytes | None = None) -> TargetFile:
    """Add ``wheel`` as the target of ``version``, signed here by the operator's targets key (one machine; the
    offline way is ``sign_release`` there and ``upload`` here); snapshot and timestamp follow with the online
    keys. The wheel's own version must be ``version`` (its file name says it), and the signed entry says it too
    (``custom: {"balans": {"version": …}}``), which the gateway checks."""
    wheel = Path(wheel)
    signer = load_signer(targets_key, passphrase)
    with _writing(channel):
        _channel_key(channel, signer, "targets", targets_key)
        targets = sign_release(_load(channel, "targets"), signer, wheel, version, str(channel.metadata /
                                                                                      "targets.json"))
        _install_targets(channel, targets, Change("targets", added=wheel.name), wheel)
    return targets.signed.targets[wheel.name]


def upload(channel: Channel, signed: Path, wheel: Path | None = None) -> Change:
    """Put in force metadata signed offline (``balans cloud release sign | withdraw | resign --out``): targets
    that add exactly ``wheel``, or (without a wheel) withdraw releases or renew the expiry; or a renewed root.
    Refused, with the reason, unless the channel's root keys signed it and it changes nothing else."""
    probe = Metadata.from_file(str(signed)) if Path(signed).is_file() else None
    role = probe.signed.type if probe is not None else "targets"
    following = read_metadata(signed, role if role in OFFLINE_ROLES else "targets")
    with _writing(channel):
        root = _load(channel, "root")
        if role == "root":
            if wheel is not None:
                raise ReleaseError(f"{signed} is root metadata: it adds no package, upload it without a wheel",
                                   "signed")
            change = check_root(root, following, str(signed))
            _save(channel, following, f"{following.signed.version}.root.json", "root.json")
            return change
        change = check_targets(root.signed, _load(channel, "targets"), following, wheel, str(signed))
        _install_targets(channel, following, change, wheel)
    return change


def withdraw(channel: Channel, version: str, targets_key: Path, passphrase: bytes | None = None) -> Change:
    """Mark ``version`` withdrawn in the signed targets, with the targets key here (one machine)."""
    signer = load_signer(targets_key, passphrase)
    with _writing(channel):
        _channel_key(channel, signer, "targets", targets_key)
        current = _load(channel, "targets")
        targets = sign_withdrawal(current, signer, version, str(channel.metadata / "targets.json"))
        change = check_targets(_load(channel, "root").signed, current, targets)
        _install_targets(channel, targets, change)
    return change


def resign(channel: Channel, key: Path, role: str = "targets", passphrase: bytes | None = None) -> Change:
    """Renew the expiry of ``role`` (targets: a year, root: two years) with its offline key here (one machine)."""
    signer = load_signer(key, passphrase)
    with _writing(channel):
        _channel_key(channel, signer, role, key)
        current = _load(channel, role)
        following = sign_renewal(current, signer, role, str(channel.metadata / f"{role}.json"))
        if role == "root":
            change = check_root(current, following)
            _save(channel, following, f"{following.signed.version}.root.json", "root.json")
            return change
        change = check_targets(_load(channel, "root").signed, current, following)
        _install_targets(channel, following, change)
    return change


def withdrawn_versions(channel: Channel) -> frozenset[str]:
    """The versions the channel's signed targets withdraw: the gateways obey that file, so the cloud reads the
    same one (never offered, shown as withdrawn). Read again only when the file changes (a heartbeat asks)."""
    path = channel.metadata / "targets.json"
    try:
        stat = path.stat()
    except FileNotFoundError:
        return frozenset()
    key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    cached = _WITHDRAWN.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    targets = Metadata.from_file(str(path)).signed
    found = frozenset(entry_version(t) for t in targets.targets.values() if is_withdrawn(t))
    _WITHDRAWN[path] = (key, found)
    return found


def expiry(channel: Channel, when: datetime | None = None) -> list[dict]:
    """When root and targets expire, and whether that is soon enough to act (targets within 30 days, root within
    60): the offline keys must re-sign them, the cloud cannot. ``command`` says what to run."""
    if not channel.ready:
        return []
    when = when or _now()
    commands = {"targets": "balans cloud release resign --offline-dir DIR",
                "root": "balans cloud release resign --root --offline-dir DIR"}
    rows = []
    for role in ("targets", "root"):
        expires = _load(channel, role).signed.expires
        rows.append({"role": role, "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "days": (expires - when).days, "soon": expires - when < WARN_BEFORE[role],
                     "command": commands[role]})
    return rows


def refresh(channel: Channel) -> bool:
    """Re-sign snapshot and timestamp with the online keys when they are about to expire (on a gateway's fetch of
    timestamp.json): the channel stays fresh without anyone at a keyboard. True when it re-signed."""
    if not channel.ready:
        return False
    with _writing(channel):
        now = _now()
        due = any(_load(channel, role).signed.expires - now < REFRESH_BEFORE[role] for role in ONLINE_ROLES)
        if due:
            _resign_online(channel, _load(channel, "targets").signed.version, now)
        return due


def metadata_file(channel: Channel, name: str) -> Path | None:
    """The file a TUF client asks for (``N.root.json``, ``timestamp.json`` …), or None."""
    if not re.fullmatch(r"([0-9]+\.root|timestamp|snapshot|targets)\.json", name):
        return None
    path = channel.metadata / name
    return path if path.is_file() else None


def root_json(channel: Channel) -> bytes:
    """The trusted root to put on a gateway at installation (``<state>/updates/root.json``)."""
    if not channel.ready:
        raise ReleaseError("the release channel is not set up: run `balans cloud release init-keys`", "channel")
    return (channel.metadata / "1.root.json").read_bytes()
