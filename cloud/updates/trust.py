"""The release channel's root for a gateway that has none pinned (docs/updates.md, *The first root*): sent in the
heartbeat's answer, signed with the organisation's key — the key the gateway took at enrolment and checks every
site configuration with — so a gateway never has to trust a root it fetched unsigned.

The installer pins the root at enrolment (``balans provision enroll``); this covers the gateways it could not: those
enrolled before the cloud had a release channel, or whose enrolment could not fetch it.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from cloud.ingest.site_config import org_private_key
from cloud.models import Gateway
from cloud.updates.repository import channel_for
from shared.batch import b64
from shared.remote import RELEASE_ROOT_CONTEXT


def root_offer(db: Session, gateway: Gateway, report: Any) -> dict[str, str] | None:
    """``{body, signature}``: the channel's first root and the organisation's signature of it, when the heartbeat's
    ``update`` says nothing is pinned (``root: null``); None otherwise, or while the cloud has no channel. A gateway
    too old to report its root is sent nothing (it could not check it)."""
    if not isinstance(report, dict) or "root" not in report or report["root"] is not None or not has_app_context():
        return None
    channel = channel_for(current_app.config, current_app.instance_path)
    if not channel.ready:
        return None
    body = (channel.metadata / "1.root.json").read_bytes()
    return {"body": b64(body), "signature": b64(org_private_key(db, gateway.org_id).sign(RELEASE_ROOT_CONTEXT + body))}
