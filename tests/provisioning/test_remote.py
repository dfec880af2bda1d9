"""Cloud → gateway against a real cloud server and the simulated station (docs/remote.md): the signed heartbeat
and what the cloud stores of it, a log excerpt and a re-read asked for and answered, and site configurations
authored in the cloud — one that reaches the gateway and is in force, one whose meters do not answer (rolled back,
the cloud told), one whose signature is not the organisation's (refused)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from cloud import create_app
from cloud.accounts.organisations import create_organisation, create_site
from cloud.api.tokens import make_token
from cloud.db import session_scope
from cloud.ingest.enrolment import issue_token
from cloud.migrate import upgrade
from cloud.models import Batch, Site, SiteConfigVersion
from edge.config import config_toml_from_scenario, load_config
from edge.gateway import Gateway
from provisioning.demo import start_cloud
from provisioning.enrolment import enrol
from provisioning.ports import free_port
from shared.remote import config_body

from .conftest import StationThread

BALANS = str(Path(sys.executable).parent / "balans")
pytestmark = pytest.mark.timeout(120)
WAIT = 25


class GatewayThread:
    """A Gateway running on its own event loop, as `balans edge run` runs it."""

    def __init__(self, config_path: Path):
        self.gateway = Gateway(load_config(config_path))
        self.loop = asyncio.new_event_loop()
        self.task = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.gateway.run())
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(15)


@pytest.fixture(scope="module")
def remote(small_station, tmp_path_factory):
    work = tmp_path_factory.mktemp("remote")
    url = f"sqlite:///{work / 'cloud.sqlite3'}"
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "remote-test"})
    with session_scope(app) as db:
        org = create_organisation(db, small_station.organisation["name"], "cooperative", actor="test")
        site = create_site(db, org, small_station.site, small_station.site_name, actor="test")
        _, api_token = make_token(db, org, "office", "org_admin", actor="test")
        enrolment = issue_token(db, site, 2, actor="test")
    port = free_port()
    cloud = start_cloud(url, port, work)
    cloud_url = f"http://127.0.0.1:{port}"
    station = StationThread(small_station).__enter__()
    gateway_dir = work / "gateway"
    gateway_dir.mkdir()
    path = gateway_dir / "gateway.toml"
    text = config_toml_from_scenario(small_station, gateway_id="gw-remote", host="127.0.0.1", port=station.port,
                                     cloud_url=cloud_url, poll_seconds=1)
    path.write_text(text.replace("[gateway]\n", "[gateway]\nheartbeat_seconds = 1\n", 1), encoding="utf-8")
    enrol(load_config(path), enrolment)
    running = GatewayThread(path)
    running.thread.start()
    try:
        yield {"url": url, "cloud": cloud_url, "token": api_token, "path": path, "gateway": running.gateway,
               "site": small_station.site, "app": app, "work": work}
    finally:
        running.stop()
        station.__exit__(None, None, None)
        cloud.terminate()
        cloud.wait(10)


def api(remote, method: str, path: str, document: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(remote["cloud"] + path, method=method,
                                     data=json.dumps(document).encode() if document is not None else None,
                                     headers={"Authorization": f"Bearer {remote['token']}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(check, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def health(remote) -> dict | None:
    return api(remote, "GET", "/api/v1/gateways/gw-remote/heartbeat")[1]["health"]


def test_the_heartbeat_reports_the_gateways_health(remote):
    found = wait_for(lambda: (h := health(remote)) and h["meters_answering"] == 8 and h, "a heartbeat")
    assert found["meters_configured"] == 8 and isinstance(found["backlog"], int)
    assert found["software_version"] not in (None, "", "unknown") and found["uptime_s"] >= 0
    assert found["disk_free_bytes"] > 0 and abs(found["clock_offset_s"]) <= 5
    assert found["config_version"] == 0 and found["poll_seconds"] == 1


def test_the_cloud_asks_for_a_log_excerpt_and_a_reread(remote):
    status, queued = api(remote, "POST", "/api/v1/gateways/gw-remote/requests", {"kind": "log", "lines": 5})
    assert status == 201 and queued["status"] == "queued"
    assert api(remote, "POST", "/api/v1/gateways/gw-remote/requests", {"kind": "reboot"})[0] == 422
    done = subprocess.run([BALANS, "cloud", "gateway-request", "--gateway", "gw-remote", "--kind", "reread"],
                          env={**os.environ, "BALANS_DATABASE_URL": remote["url"]}, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr

    def answered():
        listed = subprocess.run([BALANS, "cloud", "gateway-requests", "--gateway", "gw-remote", "--json"],
                                env={**os.environ, "BALANS_DATABASE_URL": remote["url"]}, capture_output=True,
                                text=True, timeout=30)
        rows = json.loads(listed.stdout)
        return rows if all(row["status"] == "done" for row in rows) else None

    rows = {row["kind"]: row for row in wait_for(answered, "both results")}
    assert 1 <= len(rows["log"]["result"]["lines"]) <= 5
    assert rows["reread"]["result"]["answered"] == 8 and rows["reread"]["result"]["failed"] == {}


def test_a_poll_interval_set_in_the_cloud_reaches_the_gateway_and_is_in_force(remote):
    status, made = api(remote, "POST", f"/api/v1/sites/{remote['site']}/config", {"set": {"poll_seconds": "2"}})
    assert status == 201, made
    assert made["version"] == 1 and made["document"]["poll_seconds"] == 2
    found = wait_for(lambda: (h := health(remote)) and h["config_version"] == 1 and h, "version 1 in force")
    assert found["config_last"]["status"] == "applied" and found["config_last"]["answered"] == 8
    assert remote["gateway"].config.poll_seconds == 2 and remote["gateway"].config.config_version == 1
    on_disk = load_config(remote["path"])
    assert on_disk.poll_seconds == 2 and on_disk.config_version == 1 and on_disk.gateway_id == "gw-remote"

    def batch_says_version_1():
        with session_scope(remote["app"]) as db:
            return db.scalar(select(func.max(Batch.config_version))) == 1
    wait_for(batch_says_version_1, "a batch sealed under version 1, saying so")
    assert api(remote, "POST", f"/api/v1/sites/{remote['site']}/config", {"set": {"poll_seconds": "x"}})[1][
        "field"] == "poll_seconds"


def test_a_configuration_no_meter_answers_is_rolled_back_and_the_cloud_sees_it(remote):
    meters = api(remote, "GET", f"/api/v1/sites/{remote['site']}/config")[1]["document"]["meters"]
    changes = {f"meter.{m['id']}.unit": "200" for m in meters} | {"poll_seconds": "3"}
    status, made = api(remote, "POST", f"/api/v1/sites/{remote['site']}/config", {"set": changes})
    assert status == 201 and made["version"] == 2
    found = wait_for(lambda: (h := health(remote)) and (h["config_last"] or {}).get("version") == 2 and h,
                     "the rollback reported")
    assert found["config_last"]["status"] == "rolled_back" and "no meter answered" in found["config_last"]["reason"]
    assert found["config_version"] == 1
    on_disk = load_config(remote["path"])
    assert on_disk.config_version == 1 and on_disk.poll_seconds == 2 and {m.unit for m in on_disk.meters} != {200}
    assert remote["gateway"].config.config_version == 1


def test_a_configuration_not_signed_by_the_organisation_is_refused(remote):
    before = remote["path"].read_text(encoding="utf-8")
    forger = Ed25519PrivateKey.generate()
    with session_scope(remote["app"]) as db:
        site = db.scalar(select(Site).where(Site.code == remote["site"]))
        latest = db.scalar(select(SiteConfigVersion).where(SiteConfigVersion.site_id == site.id,
                                                           SiteConfigVersion.version == 1))
        document = json.loads(latest.body) | {"version": 3, "poll_seconds": 60}
        body = config_body(document)
        db.add(SiteConfigVersion(org_id=site.org_id, site_id=site.id, version=3, body=body,
                                 signature=forger.sign(body), created_by="intruder"))
    found = wait_for(lambda: (h := health(remote)) and (h["config_last"] or {}).get("version") == 3 and h,
                     "the refusal reported")
    assert found["config_last"]["status"] == "refused" and "organisation's key" in found["config_last"]["reason"]
    assert found["config_version"] == 1 and remote["path"].read_text(encoding="utf-8") == before
    assert remote["gateway"].config.poll_seconds == 2
