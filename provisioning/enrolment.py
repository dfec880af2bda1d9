"""Enrol a gateway with the cloud (its public key and the site's topology, with a one-time token); rotate its key."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.config import GatewayConfig
from edge.gateway import load_or_create_key
from shared.batch import b64, private_key_pem, public_key_pem
from shared.site_document import MeterRole, MeterSpec, SiteDocument, SiteDocumentError, build, to_json


class EnrolmentFailed(Exception):
    pass


def _post(url: str, document: dict, timeout: float) -> dict:
    request = urllib.request.Request(url, data=json.dumps(document, ensure_ascii=False).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read())
        except ValueError:
            answer = {"message": exc.reason}
        where = f" ({answer['field']})" if answer.get("field") else ""
        raise EnrolmentFailed(f"cloud refused: {answer.get('message', exc.reason)}{where}") from exc
    except urllib.error.URLError as exc:
        raise EnrolmentFailed(f"cannot reach the cloud at {url}: {exc.reason}") from exc


def rotate_key(config: GatewayConfig, timeout: float = 30) -> dict:
    """Make a new key, have the cloud accept it (signed by the old one), then switch to it on disk."""

    old = load_or_create_key(config.key_path)
    new = Ed25519PrivateKey.generate()
    pem = public_key_pem(new.public_key())
    pending = config.key_path.with_suffix(".new")
    pending.write_bytes(private_key_pem(new))  # kept until the cloud has answered
    pending.chmod(0o600)
    answer = _post(f"{config.cloud_url}/api/v1/gateways/{config.gateway_id}/key",
                   {"public_key": pem, "signature": b64(old.sign(pem.encode("ascii")))}, timeout)
    pending.replace(config.key_path)
    return answer


def site_document(config: GatewayConfig, created: datetime) -> SiteDocument:
    """The station's lines and meters from the gateway's configuration, as the cloud is told at enrolment."""
    meters = (MeterSpec(id=m.id, role=MeterRole(m.role), line=m.line, account=m.account, profile=m.profile)
              for m in config.meters)
    try:
        return build(site=config.site, lines=config.lines, meters=meters, created=created)
    except SiteDocumentError as exc:
        raise EnrolmentFailed(f"the configuration's site cannot be sent: {exc} — fix [[line]]/[[meter]] "
                              "in the gateway's configuration (docs/site-document.md)") from exc


def enrol(config: GatewayConfig, token: str, cloud_url: str | None = None, timeout: float = 30) -> dict:
    """POST /api/v1/enrol; returns the cloud's answer or raises with its error message."""
    key = load_or_create_key(config.key_path)
    document = {
        "token": token,
        "gateway": config.gateway_id,
        "public_key": public_key_pem(key.public_key()),
        "site": to_json(site_document(config, datetime.now(UTC))),
    }
    answer = _post((cloud_url or config.cloud_url).rstrip("/") + "/api/v1/enrol", document, timeout)
    if answer.get("org_public_key") and config.org_key_path is not None:  # verifies site configurations
        config.org_key_path.write_text(answer["org_public_key"], encoding="ascii")
    return answer


def release_root_path(config: GatewayConfig) -> Path:
    """Where the gateway's updater starts its trust in the release channel from (edge/update.py)."""
    return config.database.parent / "updates" / "root.json"


def pin_release_root(config: GatewayConfig, given: Path | None = None, cloud_url: str | None = None,
                     timeout: float = 30) -> str:
    """Put the release channel's root on the gateway at installation (docs/updates.md): the file the operator
    gave (``balans cloud release root``), else version 1 as the cloud the gateway has just enrolled with serves it
    — the trust of the enrolment, taken while the installer is there, not at the first update. A root already
    pinned stays. Returns what was done, for the installer."""
    target = release_root_path(config)
    if target.exists():
        return f"release channel root already pinned: {target}"
    if given is not None:
        try:
            json.loads(Path(given).read_text(encoding="utf-8"))["signed"]["_type"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EnrolmentFailed(f"{given}: not a TUF root (balans cloud release root > root.json)") from exc
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(given, target)
        return f"release channel root pinned from {given}: {target}"
    url = (cloud_url or config.cloud_url).rstrip("/") + "/api/v1/updates/metadata/1.root.json"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return ("the cloud has no release channel yet: once it has one, the gateway takes its root from a "
                    "heartbeat's answer, signed with the organisation's key")
        raise EnrolmentFailed(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise EnrolmentFailed(f"{url}: {exc}") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)
    return f"release channel root pinned from the cloud: {target}"
