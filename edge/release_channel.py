"""The gateway's side of the signed release channel (docs/updates.md): where its trust starts, and the fetch of an
offered release through TUF (python-tuf's ngclient), checked against what the signed targets say of it.

Trust starts from one root, pinned in ``<state>/updates/root.json``: by the installer (``balans provision
enroll``), by hand (``python -m edge.launcher trust``), or — for a gateway that has none — from the heartbeat's
answer, where the cloud sends the channel's first root signed with the organisation's key, the key the gateway took
at enrolment and checks every site configuration with. Nothing unsigned is ever trusted as a root: with no pinned
root and none kept by ngclient, an update waits (and says why) until one arrives.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version
from tuf.api.exceptions import DownloadError, RepositoryError, UnsignedMetadataError
from tuf.api.metadata import Metadata, Root, TargetFile
from tuf.api.serialization import DeserializationError
from tuf.ngclient import Updater

from edge.durable import write_atomically
from shared.batch import BatchError, load_public_key, unb64, verify_signature
from shared.remote import RELEASE_ROOT_CONTEXT

log = logging.getLogger("balans.edge.update")

RELEASE_VERSION = re.compile(r"[0-9]+(\.[0-9]+){0,3}([a-z]+[0-9]*)?(\.post[0-9]+)?(\.dev[0-9]+)?")
NO_ROOT = ("no trusted root for the release channel yet: it comes signed with the organisation's key in a heartbeat "
           "answer, or pin one (python -m edge.launcher trust root.json)")


def release_target(version: str) -> str:
    """The one file name a release of ``version`` is published under."""
    return f"balans-{version}-py3-none-any.whl"


class UpdateFailed(Exception):
    """The release could not be fetched or verified this time (the link, a proxy's page, metadata read while the
    cloud re-signed it, a clock ahead, a file that does not match, no trusted root yet): tried again later, nothing
    blocked."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UpdateDeclined(Exception):
    """The signed targets say this offer is not to be installed here: the release is withdrawn, or it is older
    than the version running and that one is not withdrawn. Nothing is blocked (a later targets version may say
    otherwise): the offer is checked again after RETRY_SECONDS, and reported once."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Release:
    """A package TUF verified: the file and the SHA-256 the signed targets metadata gives for it."""

    path: Path
    sha256: str


def signed_release(info: TargetFile) -> tuple[str | None, bool]:
    """What a TUF-verified target says of itself: the version it is bound to and whether it is withdrawn —
    ``custom: {"balans": {"version": "0.2.0", "withdrawn": true}}`` (the first releases carried only a top-level
    ``custom.version``)."""
    custom = info.custom if isinstance(info.custom, dict) else {}
    balans = custom.get("balans") if isinstance(custom.get("balans"), dict) else {}
    version = balans.get("version", custom.get("version"))
    return (version if isinstance(version, str) else None), balans.get("withdrawn") is True


def is_older(version: str, than: str) -> bool:
    """PEP 440 order (0.2.9 < 0.3.0rc1 < 0.3.0); False when either is no version (a base install reporting
    "unknown" cannot be compared, and is not held back by it)."""
    try:
        return Version(version) < Version(than)
    except InvalidVersion:
        return False


# --- the root trust starts from -----------------------------------------------------------------------------------
def pinned_root(root: Path) -> Path:
    return root / "root.json"


def pinned_digest(root: Path) -> str | None:
    """The SHA-256 of the pinned root, for the heartbeat (None: nothing pinned, the cloud then sends one)."""
    try:
        return hashlib.sha256(pinned_root(root).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def check_root(body: bytes) -> None:
    """``body`` is TUF root metadata signed by its own keys (a threshold of them); else ValueError says why."""
    try:
        metadata = Metadata.from_bytes(body)
    except DeserializationError as exc:
        raise ValueError(f"not TUF metadata: {exc}") from exc
    if not isinstance(metadata.signed, Root):
        raise ValueError(f"holds {metadata.signed.type} metadata, not root")
    try:
        metadata.signed.verify_delegate("root", metadata.signed_bytes, metadata.signatures)
    except UnsignedMetadataError as exc:
        raise ValueError(f"is not signed by its own root keys: {exc}") from exc


def pin_offered_root(root: Path, offer: Any, org_key_path: Path | None) -> bool:
    """Pin the heartbeat answer's ``release_root`` (``{body, signature}``: the channel's first root, signed with
    the organisation's key) when nothing is pinned yet. True when it was pinned; a root already pinned is never
    replaced this way, and a root that does not verify is logged and left."""
    if not isinstance(offer, dict) or pinned_root(root).exists():
        return False
    try:
        if org_key_path is None:
            raise ValueError("the gateway has no organisation key (org_key) to check it with")
        body, signature = unb64(str(offer.get("body", "")), "body"), unb64(str(offer.get("signature", "")))
        verify_signature(load_public_key(org_key_path.read_text(encoding="ascii")), RELEASE_ROOT_CONTEXT + body,
                         signature)
        check_root(body)
        text = body.decode("utf-8")
    except (OSError, ValueError, BatchError) as exc:
        reason = "the signature does not match the organisation's key" \
            if getattr(exc, "code", "") == "bad_signature" else str(exc)
        log.error("release channel root from the cloud refused: %s", reason)
        return False
    root.mkdir(parents=True, exist_ok=True)
    write_atomically(pinned_root(root), text)
    log.warning("release channel root pinned from the cloud, signed with the organisation's key: %s",
                pinned_root(root))
    return True


def _trusted_root(root: Path) -> bytes | None:
    """The root every update starts from: the pinned one whenever there is one — ngclient then walks the signed
    chain of roots from it, so nothing the cloud served earlier can stand in for it; else the root ngclient keeps
    (None: a gateway that trusted its cloud's first root before roots were delivered signed); else UpdateFailed."""
    installed = pinned_root(root)
    if installed.exists():
        return installed.read_bytes()
    if (root / "metadata" / "root.json").exists():
        return None
    raise UpdateFailed(NO_ROOT)


# --- the fetch ------------------------------------------------------------------------------------------------------
def fetch_release(root: Path, cloud_url: str, target: str, version: str | None = None,
                  refused: Any = None, running: str | None = None) -> Release | None:
    """Download ``target`` through TUF and return the verified package; None when the signed package is one
    ``refused(sha256)`` says was refused before (nothing downloaded). Any failure of the link or of verification
    (a wrong key, a tampered or unlisted file, expired or mixed metadata, a cut or foreign answer, no trusted root)
    is UpdateFailed: tried again later. ``version``: the signed targets metadata must bind the target to it.
    ``running``: the version running here; the signed targets decide, before anything is downloaded, that a
    withdrawn release, or one older than ``running`` while ``running`` is not withdrawn, is UpdateDeclined."""
    bootstrap = _trusted_root(root)
    for directory in ("metadata", "downloads"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    try:
        updater = Updater(metadata_dir=str(root / "metadata"),
                          metadata_base_url=f"{cloud_url}/api/v1/updates/metadata/",
                          target_dir=str(root / "downloads"), target_base_url=f"{cloud_url}/api/v1/updates/targets/",
                          bootstrap=bootstrap)
        updater.refresh()
        info = updater.get_targetinfo(target)
        if info is None:
            raise UpdateFailed(f"{target} is not in the release channel's signed targets")
        signed_version, withdrawn = signed_release(info)
        if version is not None and signed_version is not None and signed_version != version:
            raise UpdateFailed(f"{target} is signed as balans {signed_version}, offered as {version}")
        if withdrawn:
            raise UpdateDeclined(f"balans {signed_version or version} is withdrawn in the signed targets: "
                                 "not installed")
        if running is not None and is_older(signed_version or version or "", running):
            mine = updater.get_targetinfo(release_target(running)) if RELEASE_VERSION.fullmatch(running) else None
            if mine is None or not signed_release(mine)[1]:
                raise UpdateDeclined(f"balans {signed_version or version} is older than {running}, which runs here "
                                     "and is not withdrawn in the signed targets: not moved back")
        sha256 = info.hashes.get("sha256", "")
        if refused is not None and refused(sha256):
            return None
        cached = updater.find_cached_target(info)
        return Release(Path(cached or updater.download_target(info)), sha256)
    except (RepositoryError, DownloadError) as exc:  # every TUF and download error, a hash or length mismatch too
        raise UpdateFailed(f"the release channel did not verify: {type(exc).__name__}: {exc}") from exc
    except (OSError, ValueError) as exc:  # a local disk or a bootstrap root that is not JSON
        raise UpdateFailed(f"the release could not be fetched: {type(exc).__name__}: {exc}") from exc
