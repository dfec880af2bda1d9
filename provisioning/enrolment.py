"""Enrol a gateway with the cloud: send its public key and the site's topology with a one-time token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from edge.config import GatewayConfig
from edge.gateway import load_or_create_key
from shared.batch import public_key_pem


class EnrolmentFailed(Exception):
    pass


def enrol(config: GatewayConfig, token: str, cloud_url: str | None = None, timeout: float = 30) -> dict:
    """POST /api/v1/enrol; returns the cloud's answer or raises with its error message."""
    key = load_or_create_key(config.key_path)
    document = {
        "token": token,
        "gateway": config.gateway_id,
        "public_key": public_key_pem(key.public_key()),
        "site": config.site_document(),
    }
    url = (cloud_url or config.cloud_url).rstrip("/") + "/api/v1/enrol"
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
        raise EnrolmentFailed(f"cloud refused enrolment: {answer.get('message', exc.reason)}{where}") from exc
    except urllib.error.URLError as exc:
        raise EnrolmentFailed(f"cannot reach the cloud at {url}: {exc.reason}") from exc
