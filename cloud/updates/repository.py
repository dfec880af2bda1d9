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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from cloud.errors import ExplainedError
from edge.update import RELEASE_VERSION, release_target
from shared.batch import BatchError, load_private_key, private_key_pem

EXPIRY = {"root": timedelta(days=730), "targets": timedelta(days=365), "snapshot": timedelta(days=7),
          "timestamp": timedelta(days=1)}
REFRESH_BEFORE = {"snapshot": timedelta(days=2), "timestamp": timedelta(hours=12)}
OFFLINE_ROLES = ("root", "targets")
ONLINE_ROLES = ("snapshot", "timestamp")
VERSION = RELEASE_VERSION  # the gateway checks an offer against the same pattern and file name (edge/update.py)
_LOCK = threading.Lock()  # one writer of the metadata files in this process (publish, refresh) …


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


class ReleaseError(ExplainedError):
    """A release cannot be made, served or rolled out; ``field`` names what is wrong (a key file, the wheel, the
    version, the gateways); ``params`` fill a page's wording of it (cloud/updates/views.py)."""

    def __init__(self, message: str, field: str = "", code: str = "", **params):
        super().__init__(message, code, **params)
        self.message, self.field = message, field


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


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _write_key(path: Path) -> CryptoSigner:
    if path.exists():
        raise ReleaseError(f"{path} already exists: a release key is never overwritten (move it away first)", "key")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_key_pem(key))
    return CryptoSigner(key)


def load_signer(path: Path) -> CryptoSigner:
    try:
        return CryptoSigner(load_private_key(Path(path).read_bytes()))
    except OSError as exc:
        raise ReleaseError(f"cannot read the key file {path}: {exc.strerror}", "key") from exc
    except (BatchError, ValueError, TypeError) as exc:
        raise ReleaseError(f"{path} is not an Ed25519 private key in PEM", "key") from exc


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


def init_keys(channel: Channel, offline_dir: Path) -> dict[str, str]:
    """Make the four release keys (root and targets into ``offline_dir``, snapshot and timestamp into the cloud)
    and version 1 of every metadata file; the key ids, for the operator's records."""
    if channel.ready:
        raise ReleaseError(f"{channel.metadata} already holds a release channel", "channel")
    offline_dir = Path(offline_dir)
    signers = {role: _write_key(offline_dir / f"{role}.pem") for role in OFFLINE_ROLES}
    signers |= {role: _write_key(channel.online_key(role)) for role in ONLINE_ROLES}
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


def publish(channel: Channel, wheel: Path, version: str, targets_key: Path) -> TargetFile:
    """Add ``wheel`` as the target of ``version``, signed by the operator's targets key; snapshot and timestamp
    follow with the online keys. The wheel's own version must be ``version`` (its file name says it), and the
    signed entry says it too (``custom: {"version": …}``), which the gateway checks."""
    wheel = Path(wheel)
    if not VERSION.fullmatch(version):
        raise ReleaseError(f"{version!r} is not a release version such as 0.2.0", "version")
    if not wheel.is_file() or wheel.suffix != ".whl":
        raise ReleaseError(f"{wheel} is not a wheel file (…-py3-none-any.whl)", "wheel")
    if wheel.name != release_target(version):
        raise ReleaseError(f"{wheel.name} is not balans {version} (expected {release_target(version)}: a pure "
                           "Python wheel, the only form a gateway accepts)", "wheel")
    signer = load_signer(targets_key)
    with _writing(channel):
        targets = _load(channel, "targets")
        root = _load(channel, "root").signed
        if signer.public_key.keyid not in root.roles["targets"].keyids:
            raise ReleaseError(f"{targets_key} is not the channel's targets key", "targets-key")
        channel.targets.mkdir(parents=True, exist_ok=True)
        destination = channel.targets / wheel.name
        if destination.exists() and wheel.name in targets.signed.targets:
            raise ReleaseError(f"{wheel.name} is already published; a release is never replaced, publish a new "
                               "version", "wheel")
        shutil.copyfile(wheel, destination.with_name(destination.name + ".tmp"))
        os.replace(destination.with_name(destination.name + ".tmp"), destination)
        target = TargetFile.from_file(wheel.name, str(destination), ["sha256"])
        target.unrecognized_fields["custom"] = {"version": version}
        now = _now()
        targets.signed.targets[wheel.name] = target
        targets.signed.version += 1
        targets.signed.expires = now + EXPIRY["targets"]
        targets.signatures.clear()
        targets.sign(signer)
        _save(channel, targets, "targets.json")
        _resign_online(channel, targets.signed.version, now)
    return target


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
