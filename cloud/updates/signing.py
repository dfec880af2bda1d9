"""The offline half of the release channel (docs/updates.md): the root and targets keys in passphrase-encrypted
files, the changes they sign (a release added, a release withdrawn, an expiry renewed), and the check the cloud
makes of signed metadata brought to it — that it is signed by the keys its root lists and changes exactly what
it says, nothing else.

Files and values only: no database, no server, so ``balans cloud release sign`` runs on a machine that never
touches the network.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.exceptions import UnverifiedSignatureError, VerificationError
from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root, TargetFile
from tuf.api.serialization import DeserializationError

from cloud.errors import ExplainedError
from edge.update import RELEASE_VERSION, release_target

EXPIRY = {"root": timedelta(days=730), "targets": timedelta(days=365), "snapshot": timedelta(days=7),
          "timestamp": timedelta(days=1)}
PASSPHRASE_VARIABLE = "BALANS_RELEASE_PASSPHRASE"  # for scripts and tests; a person is prompted
VERSION = RELEASE_VERSION  # the gateway checks an offer against the same pattern and file name (edge/update.py)


class ReleaseError(ExplainedError):
    """A release cannot be made, served or rolled out; ``field`` names what is wrong (a key file, the wheel, the
    version, the gateways); ``params`` fill a page's wording of it (cloud/updates/views.py)."""

    def __init__(self, message: str, field: str = "", code: str = "", **params):
        super().__init__(message, code, **params)
        self.message, self.field = message, field


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# --- keys -------------------------------------------------------------------------------------------------------
def write_key(path: Path, passphrase: bytes | None = None) -> CryptoSigner:
    """A new Ed25519 key in ``path`` (never over an existing file), encrypted with ``passphrase`` when given."""
    path = Path(path)
    if path.exists():
        raise ReleaseError(f"{path} already exists: a release key is never overwritten (move it away first)", "key")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    protection = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, protection)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return CryptoSigner(key)


def key_is_encrypted(path: Path) -> bool:
    try:
        return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in Path(path).read_bytes()
    except OSError:
        return False  # load_signer says why the file cannot be read


def load_signer(path: Path, passphrase: bytes | None = None) -> CryptoSigner:
    """The key in ``path``; ``passphrase`` opens an encrypted one (it is ignored for a plain one)."""
    path = Path(path)
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ReleaseError(f"cannot read the key file {path}: {exc.strerror}", "key") from exc
    encrypted = key_is_encrypted(path)
    if encrypted and not passphrase:
        raise ReleaseError(f"{path} is encrypted: give its passphrase (--passphrase-file, the prompt, or "
                           f"{PASSPHRASE_VARIABLE})", "passphrase")
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase if encrypted else None)
    except ValueError as exc:
        if encrypted:
            raise ReleaseError(f"the passphrase does not open {path}", "passphrase") from exc
        raise ReleaseError(f"{path} is not an Ed25519 private key in PEM", "key") from exc
    except TypeError as exc:
        raise ReleaseError(f"{path} is not an Ed25519 private key in PEM", "key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseError(f"{path} is not an Ed25519 private key in PEM", "key")
    return CryptoSigner(key)


# --- what a targets entry says -----------------------------------------------------------------------------------
def entry_version(target: TargetFile) -> str | None:
    """The version a signed entry binds its package to: ``custom.balans.version`` (or the first releases'
    ``custom.version``)."""
    custom = target.custom if isinstance(target.custom, dict) else {}
    balans = custom.get("balans") if isinstance(custom.get("balans"), dict) else {}
    version = balans.get("version", custom.get("version"))
    return version if isinstance(version, str) else None


def is_withdrawn(target: TargetFile) -> bool:
    custom = target.custom if isinstance(target.custom, dict) else {}
    balans = custom.get("balans") if isinstance(custom.get("balans"), dict) else {}
    return balans.get("withdrawn") is True


def _custom(version: str, withdrawn: bool = False) -> dict[str, Any]:
    # The wire format the gateway reads: {"balans": {"version", "withdrawn"}}. The top-level "version" is what
    # gateways of the first releases check; it stays so that they keep binding the package to its version.
    balans: dict[str, Any] = {"version": version}
    if withdrawn:
        balans["withdrawn"] = True
    return {"version": version, "balans": balans}


def check_wheel(wheel: Path, version: str) -> None:
    wheel = Path(wheel)
    if not VERSION.fullmatch(version):
        raise ReleaseError(f"{version!r} is not a release version such as 0.2.0", "version")
    if not wheel.is_file() or wheel.suffix != ".whl":
        raise ReleaseError(f"{wheel} is not a wheel file (…-py3-none-any.whl)", "wheel")
    if wheel.name != release_target(version):
        raise ReleaseError(f"{wheel.name} is not balans {version} (expected {release_target(version)}: a pure "
                           "Python wheel, the only form a gateway accepts)", "wheel")


def release_entry(wheel: Path, version: str) -> TargetFile:
    """The signed entry of ``wheel`` as the release ``version``: its length, SHA-256 and version."""
    check_wheel(wheel, version)
    target = TargetFile.from_file(Path(wheel).name, str(wheel), ["sha256"])
    target.unrecognized_fields["custom"] = _custom(version)
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the changes the targets key signs -----------------------------------------------------------------------------
def read_metadata(path: Path, role: str) -> Metadata:
    """``role``'s metadata from ``path`` (the channel's file, or one downloaded or signed elsewhere)."""
    try:
        metadata = Metadata.from_file(str(path))
    except FileNotFoundError as exc:
        raise ReleaseError(f"{path} does not exist", "metadata") from exc
    except (DeserializationError, OSError, ValueError) as exc:
        raise ReleaseError(f"{path} is not TUF metadata: {exc}", "metadata") from exc
    if metadata.signed.type != role:
        raise ReleaseError(f"{path} holds {metadata.signed.type} metadata, not {role}", "metadata")
    return metadata


def _signed_by(metadata: Metadata, signer: CryptoSigner) -> bool:
    signature = metadata.signatures.get(signer.public_key.keyid)
    if signature is None:
        return False
    try:
        signer.public_key.verify_signature(signature, metadata.signed_bytes)
    except (UnverifiedSignatureError, VerificationError):
        return False
    return True


def _next(metadata: Metadata, role: str, signer: CryptoSigner, when: datetime) -> Metadata:
    """``metadata`` as its next version: one version up, a fresh expiry, signed by ``signer`` alone."""
    following = Metadata.from_bytes(metadata.to_bytes())
    following.signed.version += 1
    following.signed.expires = when + EXPIRY[role]
    following.signatures.clear()
    following.sign(signer)
    return following


def _current(metadata: Metadata, signer: CryptoSigner, role: str, where: str) -> None:
    """The metadata to build on must be signed by the key about to sign its successor: a copy of targets.json
    altered on its way to the offline machine is caught before it is signed."""
    if not _signed_by(metadata, signer):
        raise ReleaseError(f"{where} is not signed by this {role} key: download the channel's current "
                           f"{role}.json again (or it belongs to another channel)", "metadata")


def sign_release(targets: Metadata, signer: CryptoSigner, wheel: Path, version: str,
                 where: str = "targets.json", when: datetime | None = None) -> Metadata:
    """The next targets metadata: ``targets`` with ``wheel`` added as ``version``."""
    entry = release_entry(wheel, version)
    _current(targets, signer, "targets", where)
    if entry.path in targets.signed.targets:
        raise ReleaseError(f"{entry.path} is already published; a release is never replaced, publish a new "
                           "version", "wheel")
    taken = [name for name, t in targets.signed.targets.items() if entry_version(t) == version]
    if taken:
        raise ReleaseError(f"{version} is already published as {taken[0]}; publish a new version", "version")
    following = Metadata.from_bytes(targets.to_bytes())
    following.signed.targets[entry.path] = entry
    return _next(following, "targets", signer, when or now())


def sign_withdrawal(targets: Metadata, signer: CryptoSigner, version: str, where: str = "targets.json",
                    when: datetime | None = None) -> Metadata:
    """The next targets metadata: the release ``version`` marked withdrawn (never installed by a gateway, and a
    gateway running it may move back to an older version)."""
    _current(targets, signer, "targets", where)
    following = Metadata.from_bytes(targets.to_bytes())
    found = [t for t in following.signed.targets.values() if entry_version(t) == version]
    if not found:
        raise ReleaseError(f"{version} is not in {where}: nothing to withdraw", "version")
    if is_withdrawn(found[0]):
        raise ReleaseError(f"{version} is withdrawn already", "version")
    found[0].unrecognized_fields["custom"] = _custom(version, withdrawn=True)
    return _next(following, "targets", signer, when or now())


def sign_renewal(metadata: Metadata, signer: CryptoSigner, role: str, where: str = "",
                 when: datetime | None = None) -> Metadata:
    """The next ``role`` (targets or root) metadata, the same but for a fresh expiry (a year, two for root)."""
    _current(metadata, signer, role, where or f"{role}.json")
    return _next(metadata, role, signer, when or now())


# --- the cloud's check of what was signed offline --------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """What a signed targets metadata changes against the channel's: the release it adds, those it withdraws; or,
    for root, nothing but the expiry."""

    role: str
    added: str | None = None  # the target path
    withdrawn: list[str] = field(default_factory=list)  # versions

    def describe(self) -> str:
        if self.added:
            return f"adds {self.added}"
        if self.withdrawn:
            return f"withdraws {', '.join(self.withdrawn)}"
        return f"renews {self.role}"


def _verified(root: Root, role: str, metadata: Metadata, where: str) -> None:
    try:
        root.verify_delegate(role, metadata.signed_bytes, metadata.signatures)
    except UnsignedMetadataError as exc:
        raise ReleaseError(f"{where} is not signed by the channel's {role} key (the cloud's root lists "
                           f"{', '.join(k[:16] for k in root.roles[role].keyids)}…): sign it with the offline "
                           f"{role}.pem of this channel", "signed") from exc


def _in_sequence(current: Metadata, following: Metadata, where: str, when: datetime) -> None:
    if following.signed.version != current.signed.version + 1:
        raise ReleaseError(f"{where} is version {following.signed.version}; the channel's "
                           f"{current.signed.type} is version {current.signed.version}, so it must be "
                           f"{current.signed.version + 1} (sign it again from the channel's current "
                           f"{current.signed.type}.json)", "signed")
    if following.signed.expires <= when:
        raise ReleaseError(f"{where} expired at {following.signed.expires:%Y-%m-%d %H:%M}Z: sign it again",
                           "signed")


def check_targets(root: Root, current: Metadata, following: Metadata, wheel: Path | None = None,
                  where: str = "the signed targets", when: datetime | None = None) -> Change:
    """That ``following`` may replace the channel's ``current`` targets: signed by the root's targets key, the
    next version, and changing exactly one thing — adding ``wheel`` (its length and SHA-256), or, without a wheel,
    only withdrawing releases or renewing the expiry. A ReleaseError says what else it does."""
    when = when or now()
    _verified(root, "targets", following, where)
    _in_sequence(current, following, where, when)
    if following.signed.delegations is not None:
        raise ReleaseError(f"{where} delegates to other signers; the channel has no delegations", "signed")
    before, after = current.signed.targets, following.signed.targets
    removed = sorted(set(before) - set(after))
    if removed:
        raise ReleaseError(f"{where} removes {', '.join(removed)}: a release is never removed, withdraw it "
                           "(balans cloud release withdraw …)", "signed")
    withdrawn = []
    for name in sorted(before):
        old, new = before[name], after[name]
        same_package = (old.length, old.hashes) == (new.length, new.hashes)
        if not same_package or entry_version(old) != entry_version(new):
            raise ReleaseError(f"{where} changes the package or version of {name}: a release is never replaced, "
                               "publish a new version", "signed")
        if is_withdrawn(old) and not is_withdrawn(new):
            raise ReleaseError(f"{where} takes back the withdrawal of {name}: a withdrawn release stays "
                               "withdrawn, publish a new version", "signed")
        if is_withdrawn(new) and not is_withdrawn(old):
            withdrawn.append(entry_version(new))
    added = sorted(set(after) - set(before))
    if wheel is None:
        if added:
            raise ReleaseError(f"{where} adds {', '.join(added)}: upload it with its wheel (balans cloud release "
                               f"upload {added[0]} --signed …)", "signed")
        return Change("targets", withdrawn=withdrawn)
    wheel = Path(wheel)
    if added != [wheel.name] or withdrawn:
        says = (f"adds {', '.join(added)}" if added else "adds nothing") + (
            f" and withdraws {', '.join(withdrawn)}" if withdrawn else "")
        raise ReleaseError(f"{where} {says}; it must add exactly {wheel.name}", "signed")
    entry = after[wheel.name]
    length, sha256 = wheel.stat().st_size, sha256_of(wheel)
    if (entry.length, entry.hashes.get("sha256")) != (length, sha256):
        raise ReleaseError(f"{where} signs {wheel.name} as {entry.length} bytes with SHA-256 "
                           f"{entry.hashes.get('sha256', '?')[:16]}…; the file given is {length} bytes, "
                           f"{sha256[:16]}…: upload the very wheel that was signed", "wheel")
    version = entry_version(entry)
    if version is None or wheel.name != release_target(version) or is_withdrawn(entry):
        raise ReleaseError(f"{where} signs {wheel.name} as balans {version} (or withdrawn): not the release its "
                           "name says", "signed")
    taken = [name for name, t in before.items() if entry_version(t) == version]
    if taken:
        raise ReleaseError(f"{version} is already published as {taken[0]}; publish a new version", "version")
    return Change("targets", added=wheel.name)


def check_root(current: Metadata, following: Metadata, where: str = "the signed root",
               when: datetime | None = None) -> Change:
    """That ``following`` may replace the channel's root: signed by the current root keys and by its own, the next
    version, and the same keys and roles (a renewal; re-keying has no command yet)."""
    when = when or now()
    _verified(current.signed, "root", following, where)
    _verified(following.signed, "root", following, where)
    _in_sequence(current, following, where, when)
    old, new = current.signed.to_dict(), following.signed.to_dict()
    for changed in ("keys", "roles", "consistent_snapshot"):
        if old.get(changed) != new.get(changed):
            raise ReleaseError(f"{where} changes the root's {changed}: only a renewal of its expiry is uploaded "
                               "this way", "signed")
    return Change("root")
