"""Site configurations authored in the cloud, signed with the organisation's key (docs/remote.md).

The organisation's Ed25519 key pair is made at first use. Its private key is kept in the database encrypted with
Fernet, whose key is derived from the app's SECRET_KEY with HKDF-SHA256 (salt and info name the purpose): a copy
of the database alone cannot sign a configuration, and no key file has to be deployed beside the app. Rotating
SECRET_KEY therefore needs a new org key (and the gateways its public key, by re-enrolment).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.models import Gateway, GatewayHealth, OrgSigningKey, Site, SiteConfigVersion, utcnow
from shared.batch import b64, load_private_key, private_key_pem, public_key_pem
from shared.calendar import iso_utc
from shared.remote import CONFIG_VERSION, RemoteError, check_config, config_body, set_values


def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"balans-org-signing-key",
                   info=b"fernet:org_signing_keys.private_key").derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def org_key(db: Session, org_id: int) -> OrgSigningKey:
    """The organisation's signing key, made (and flushed) at first use."""
    found = db.get(OrgSigningKey, org_id)
    if found is None:
        key = Ed25519PrivateKey.generate()
        token = _fernet(current_app.config["SECRET_KEY"]).encrypt(private_key_pem(key))
        found = OrgSigningKey(org_id=org_id, public_key=public_key_pem(key.public_key()),
                              private_key=token.decode("ascii"))
        db.add(found)
        db.flush()
        audit(db, org_id, "system", "org_key.create", f"org:{org_id}", None, {"public_key": found.public_key})
    return found


def org_private_key(db: Session, org_id: int) -> Ed25519PrivateKey:
    try:
        pem = _fernet(current_app.config["SECRET_KEY"]).decrypt(org_key(db, org_id).private_key.encode("ascii"))
    except InvalidToken as exc:
        raise RemoteError("the organisation's key cannot be decrypted with this SECRET_KEY", "SECRET_KEY") from exc
    return load_private_key(pem)


def latest_version(db: Session, site: Site) -> SiteConfigVersion | None:
    return db.scalar(select(SiteConfigVersion).where(SiteConfigVersion.site_id == site.id)
                     .order_by(SiteConfigVersion.version.desc()).limit(1))


def current_document(db: Session, site: Site) -> dict[str, Any] | None:
    """The latest version's document, or — before the first — what the site's gateway reported it runs."""
    latest = latest_version(db, site)
    if latest is not None:
        return orjson.loads(latest.body)
    reported = db.scalars(select(GatewayHealth).join(Gateway, Gateway.id == GatewayHealth.gateway_id)
                          .where(Gateway.site_id == site.id).order_by(GatewayHealth.received_at.desc())).first()
    authored = reported.document.get("authored") if reported is not None else None
    if not isinstance(authored, dict):
        return None
    return {"v": CONFIG_VERSION, "site": site.code, "version": 0, "created": reported.document.get("sent", ""),
            **{key: authored.get(key) for key in ("poll_seconds", "thresholds", "lines", "meters")}}


def new_version(db: Session, site: Site, changes: dict[str, str], actor: str,
                at: datetime | None = None) -> SiteConfigVersion:
    """Apply ``changes`` to the current document and store it as the next version, signed (caller commits)."""
    base = current_document(db, site)
    if base is None:
        raise RemoteError("the site has no configuration yet: its gateway reports it in its first heartbeat",
                          "site")
    if not changes:
        raise RemoteError("give at least one key=value", "set")
    number = (db.scalar(select(func.max(SiteConfigVersion.version)).where(SiteConfigVersion.site_id == site.id))
              or 0) + 1
    document = set_values(base, changes) | {"version": number, "created": iso_utc(at or utcnow()),
                                             "site": site.code}
    body = config_body(document)
    row = SiteConfigVersion(org_id=site.org_id, site_id=site.id, version=number, body=body,
                            signature=org_private_key(db, site.org_id).sign(body), created_by=actor)
    db.add(row)
    db.flush()
    audit(db, site.org_id, actor, "site_config.version", f"site:{site.code}",
          {"version": base.get("version")}, {"version": number, "changes": changes})
    return row


def version_json(row: SiteConfigVersion) -> dict[str, Any]:
    return {"version": row.version, "created_by": row.created_by, "document": check_config(orjson.loads(row.body)),
            "body": b64(row.body), "signature": b64(row.signature)}
