"""Software updates on the gateway (docs/updates.md), against the real cloud's release channel over HTTP: a release
verified by TUF and installed into the inactive slot; a tampered package, metadata signed by a key the root does
not trust, and a root that is not the channel's all refused with nothing installed; the launcher rolling back a
version that keeps crashing or misses its health check's deadline; and the whole chain with a running gateway and
the simulated station — a rollout taken, the new version reported, a broken release rolled back and shown."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from sqlalchemy import select
from tuf.api.metadata import Metadata, TargetFile
from tuf.api.serialization.json import JSONSerializer
from werkzeug.serving import make_server

from cloud import create_app
from cloud.accounts.organisations import create_organisation, create_site
from cloud.db import session_scope
from cloud.ingest.enrolment import issue_token
from cloud.migrate import upgrade
from cloud.models import AuditLog
from cloud.updates.repository import Channel, init_keys, load_signer, publish
from cloud.updates.rollout import record_release, start_rollout, status
from edge.config import config_toml_from_scenario, load_config
from edge.gateway import Gateway
from edge.launcher import child_environment, supervise
from edge.update import Slots, UpdateAgent, UpdateRefused, fetch_release, software_version
from provisioning.enrolment import enrol
from provisioning.ports import free_port
from shared.scenario import load_scenario
from tests.edge.release_wheels import release_wheel
from tests.provisioning.conftest import SMALL_STATION, StationThread

pytestmark = pytest.mark.timeout(90)
BALANS = str(Path(sys.executable).parent / "balans")
# -P: not the current directory first on the path (the repository has its own balans.egg-info there)
PRINT_VERSION = "import importlib.metadata as m; print(m.version('balans'))"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """The cloud on a real port; each test points it at its own release channel (``UPDATES_DIR``)."""
    work = tmp_path_factory.mktemp("update-cloud")
    url = f"sqlite:///{work / 'cloud.sqlite3'}"
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "update-test"})
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def channel(cloud, tmp_path):
    app, url = cloud
    found = Channel(tmp_path / "cloud-updates")
    app.config["UPDATES_DIR"] = str(found.base)
    init_keys(found, tmp_path / "offline")
    return found, tmp_path / "offline", url


def test_a_release_is_verified_installed_into_the_inactive_slot_and_run_from_it(channel, tmp_path):
    repository, offline, url = channel
    target = publish(repository, release_wheel(tmp_path, "0.9.0"), "0.9.0", offline / "targets.pem")
    slots = Slots(tmp_path / "gateway" / "updates")
    wheel = fetch_release(slots.root, url, target.path)
    assert wheel.read_bytes() == (repository.targets / target.path).read_bytes()
    slot = slots.install(wheel, "0.9.0")
    assert slot == "a" and (slots.path("a") / "balans-0.9.0.dist-info").is_dir()
    slots.switch(slot, "0.9.0", 60)
    pointer = slots.read()
    assert pointer["slot"] == "a" and pointer["trial"]["version"] == "0.9.0"
    assert pointer["previous"] == {"slot": None, "version": software_version()}
    ran = subprocess.run([sys.executable, "-P", "-c", PRINT_VERSION], env=child_environment(slots), capture_output=True,
                         text=True, timeout=30, check=True)
    assert ran.stdout.strip() == "0.9.0"  # the slot's balans, not the base install's
    assert slots.confirm()["status"] == "applied" and slots.read()["trial"] is None
    assert slots.inactive() == "b"  # the next release goes beside it, the running one stays whole


def test_a_tampered_package_is_refused_and_nothing_is_installed(channel, tmp_path):
    repository, offline, url = channel
    target = publish(repository, release_wheel(tmp_path, "0.9.0"), "0.9.0", offline / "targets.pem")
    stored = repository.targets / target.path
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed on the cloud's disk: same name, same length
    stored.write_bytes(bytes(data))
    slots = Slots(tmp_path / "gateway" / "updates")
    with pytest.raises(UpdateRefused, match="LengthOrHashMismatch"):
        fetch_release(slots.root, url, target.path)
    stored.write_bytes(bytes(data) + b"more")  # and a longer one
    with pytest.raises(UpdateRefused, match="did not verify"):
        fetch_release(slots.root, url, target.path)
    assert not (slots.root / "slots").exists() and list((slots.root / "downloads").iterdir()) == []


def test_metadata_signed_by_a_key_the_root_does_not_trust_is_refused(channel, tmp_path):
    """Someone who took the cloud has its online keys, not the operator's targets key: the package they add is
    signed by a key of their own and refused, and so is a channel whose root is not the one installed."""
    repository, offline, url = channel
    publish(repository, release_wheel(tmp_path, "0.9.0"), "0.9.0", offline / "targets.pem")
    slots = Slots(tmp_path / "gateway" / "updates")
    fetch_release(slots.root, url, "balans-0.9.0-py3-none-any.whl")  # the gateway now trusts this channel
    (tmp_path / "evil").mkdir()
    evil = release_wheel(tmp_path / "evil", "6.6.6")
    (repository.targets / evil.name).write_bytes(evil.read_bytes())
    serializer = JSONSerializer(compact=False)
    targets = Metadata.from_file(str(repository.metadata / "targets.json"))
    targets.signed.targets[evil.name] = TargetFile.from_file(evil.name, str(evil))
    targets.signed.version += 1
    targets.signatures.clear()
    targets.sign(CryptoSigner.generate_ed25519())
    targets.to_file(str(repository.metadata / "targets.json"), serializer)
    for role, meta in (("snapshot", "targets.json"), ("timestamp", "snapshot.json")):
        signed = Metadata.from_file(str(repository.metadata / f"{role}.json"))
        signed.signed.version += 1
        if role == "snapshot":
            signed.signed.meta[meta].version = targets.signed.version
        else:
            signed.signed.snapshot_meta.version += 1
        signed.signatures.clear()
        signed.sign(load_signer(repository.online_key(role)))
        signed.to_file(str(repository.metadata / f"{role}.json"), serializer)
    with pytest.raises(UpdateRefused, match="UnsignedMetadataError"):
        fetch_release(slots.root, url, evil.name)
    other = Channel(tmp_path / "another")
    init_keys(other, tmp_path / "another-offline")
    pinned = Slots(tmp_path / "pinned" / "updates")
    pinned.root.mkdir(parents=True)
    (pinned.root / "root.json").write_bytes((other.metadata / "1.root.json").read_bytes())  # the installer's root
    with pytest.raises(UpdateRefused, match="did not verify"):
        fetch_release(pinned.root, url, "balans-0.9.0-py3-none-any.whl")
    assert not (slots.root / "slots").exists() and not (pinned.root / "slots").exists()


def _installed(tmp_path: Path, version: str) -> Slots:
    slots = Slots(tmp_path / "updates")
    slots.switch(slots.install(release_wheel(tmp_path, version), version), version, 2.5)
    return slots


def _gateway_script(on_new: str) -> list[str]:
    """A stand-in for `balans edge run`: the new version does ``on_new``; the base install exits cleanly."""
    return [sys.executable, "-P", "-c", f"import importlib.metadata as m, sys, time\n"
            f"if m.version('balans') == '0.9.0':\n    {on_new}\nsys.exit(0)"]


def test_the_launcher_rolls_back_a_version_that_keeps_crashing(tmp_path):
    slots = _installed(tmp_path, "0.9.0")
    started = time.monotonic()
    assert supervise(slots, _gateway_script("sys.exit(1)")) == 0  # the base install ran and exited cleanly
    pointer = slots.read()
    assert pointer["slot"] is None and pointer["trial"] is None and "0.9.0" in pointer["refused"]
    assert pointer["last"]["status"] == "rolled_back" and "exited 3 times" in pointer["last"]["reason"]
    assert time.monotonic() - started < 2.5  # the crashes, not the deadline, decided it


def test_the_launcher_rolls_back_a_version_that_misses_its_health_checks_deadline(tmp_path):
    slots = _installed(tmp_path, "0.9.0")
    assert supervise(slots, _gateway_script("time.sleep(60)")) == 0
    last = slots.read()["last"]
    assert last["status"] == "rolled_back" and last["version"] == "0.9.0"
    assert "health check not passed within 2 s" in last["reason"]


# --- the whole chain -------------------------------------------------------------------------------------------
def wait_for(check, what: str, seconds: float = 40):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_running_gateway_takes_a_rollout_and_rolls_a_broken_release_back(cloud, tmp_path):
    app, url = cloud
    repository = Channel(tmp_path / "cloud-updates")
    app.config["UPDATES_DIR"] = str(repository.base)
    init_keys(repository, tmp_path / "offline")
    scenario = load_scenario(SMALL_STATION.read_text(encoding="utf-8"), str(SMALL_STATION))
    with session_scope(app) as db:
        org = create_organisation(db, "Котеджне містечко «Оновлення»", "cooperative", actor="test")
        site = create_site(db, org, scenario.site, scenario.site_name, actor="test")
        token = issue_token(db, site, 2, actor="test")
        for version, files in (("0.9.0", {}),
                               # 0.9.1 cannot start: its edge package fails on import, as a bad release would
                               ("0.9.1", {"edge/__init__.py": "raise RuntimeError('a broken release')\n"})):
            target = publish(repository, release_wheel(tmp_path, version, files), version,
                             tmp_path / "offline" / "targets.pem")
            record_release(db, version, target.path, target.hashes["sha256"], target.length, "test")
    state = tmp_path / "gateway"
    state.mkdir()
    with StationThread(scenario) as station:
        path = state / "gateway.toml"
        text = config_toml_from_scenario(scenario, gateway_id="gw-upd", host="127.0.0.1", port=station.port,
                                         cloud_url=url, poll_seconds=1)
        path.write_text(text.replace("[gateway]\n", "[gateway]\nheartbeat_seconds = 1\n", 1), encoding="utf-8")
        config = load_config(path)
        enrol(config, token)
        with session_scope(app) as db:
            start_rollout(db, "0.9.0", 0, ["gw-upd"], "test")  # this gateway only
        env = {**os.environ, "BALANS_UPDATE_TRIAL_SECONDS": "30"}
        launcher = subprocess.Popen([sys.executable, "-m", "edge.launcher", "--state", str(config.database.parent),
                                     "run", "--", BALANS, "edge", "run", "--config", str(path)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=open(tmp_path / "gateway.log", "wb"))  # noqa: SIM115
        try:
            def gateway_row(version=None, status=None):
                with session_scope(app) as db:
                    row = next(r for r in status_of(db) if r["gateway"] == "gw-upd")
                last = row["last"] or {}
                return row if (version is None or row["running"] == version) and \
                    (status is None or (last.get("version"), last.get("status")) == status) else None

            row = wait_for(lambda: gateway_row("0.9.0", ("0.9.0", "applied")), "0.9.0 applied")
            assert row["slot"] == "a"
            with session_scope(app) as db:
                start_rollout(db, "0.9.1", 100, [], "test")
            row = wait_for(lambda: gateway_row("0.9.0", ("0.9.1", "rolled_back")), "0.9.1 rolled back")
            assert row["slot"] == "a" and "before passing its health check" in row["last"]["reason"]
            assert row["target"] == "0.9.1"  # still the rollout's version, but never offered to it again
            pointer = json.loads((state / "updates" / "current.json").read_text(encoding="utf-8"))
            assert pointer["slot"] == "a" and pointer["version"] == "0.9.0" and "0.9.1" in pointer["refused"]
            with urllib.request.urlopen(f"{url}/api/v1/updates/metadata/timestamp.json", timeout=5) as answer:
                assert json.loads(answer.read())["signed"]["_type"] == "timestamp"
        finally:
            launcher.terminate()
            launcher.wait(30)
    with session_scope(app) as db:
        outcomes = [entry.after for entry in db.scalars(select(AuditLog).where(
            AuditLog.action == "gateway.software_update").order_by(AuditLog.id))]
    assert [(o["version"], o["status"]) for o in outcomes] == [("0.9.0", "applied"), ("0.9.1", "rolled_back")]


def status_of(db):
    return status(db)["gateways"]


def test_the_gateway_itself_rolls_back_a_trial_it_cannot_pass(station_setup):
    """Without the launcher's help: a gateway started outside edge.launcher while a trial is under way, and a
    version whose deadline passes with no poll done, both go back to the previous slot and say why."""
    config = station_setup[3]
    gateway = Gateway(config)
    restarts = []
    try:
        slots = Slots(config.database.parent / "updates")
        slots.switch(slots.install(release_wheel(config.database.parent, "0.9.0"), "0.9.0"), "0.9.0", 600)
        stranded = UpdateAgent(gateway, restart=lambda: restarts.append("restart"))
        assert asyncio.run(stranded.after_heartbeat({})) is True
        last = slots.read()["last"]
        assert last["status"] == "rolled_back" and "python -m edge.launcher" in last["reason"]
        slots.switch("b", software_version(), -1)  # this very version on trial, its deadline already gone
        agent = UpdateAgent(gateway, restart=lambda: restarts.append("restart"))
        assert agent.report()["trial"] == software_version()
        asyncio.run(agent.after_heartbeat({"update": {"version": "0.9.0", "target": "x.whl"}}))
        last = slots.read()["last"]
        assert last["status"] == "rolled_back" and "health check not passed" in last["reason"]
        assert "polls 0" in last["reason"] and restarts == ["restart"]
    finally:
        gateway.store.close()
