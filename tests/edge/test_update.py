"""Software updates on the gateway (docs/updates.md), against the real cloud's release channel over HTTP: a release
verified by TUF and installed into the inactive slot; a tampered package, metadata signed by a key the root does
not trust, and a root that is not the channel's all refused with nothing installed; the launcher rolling back a
version that keeps crashing or misses its health check's deadline; and the whole chain with a running gateway and
the simulated station — a rollout taken, the new version reported, a broken release rolled back and shown."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shlex
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
from cloud.ingest.site_config import org_key
from cloud.migrate import upgrade
from cloud.models import AuditLog
from cloud.models import Gateway as GatewayRow
from cloud.request_guard import CONTROL
from cloud.updates.repository import Channel, init_keys, load_signer, publish
from cloud.updates.rollout import record_release, start_rollout, status
from cloud.updates.trust import root_offer
from edge.config import config_toml_from_scenario, load_config
from edge.durable import write_atomically
from edge.gateway import Gateway
from edge.launcher import child_environment, supervise
from edge.release_channel import is_older, pin_offered_root, pinned_digest
from edge.update import (
    NOT_LAUNCHED,
    STATE_VARIABLE,
    Slots,
    UpdateAgent,
    UpdateFailed,
    fetch_release,
    is_refused,
    software_version,
)
from provisioning.enrolment import enrol
from provisioning.ports import free_port
from shared.batch import b64, unb64
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


def pinned(root: Path, repository: Channel) -> Slots:
    """A gateway's updates folder with the channel's first root pinned, as the installer leaves it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "root.json").write_bytes((repository.metadata / "1.root.json").read_bytes())
    return Slots(root)


def test_a_release_is_verified_installed_into_the_inactive_slot_and_run_from_it(channel, tmp_path):
    repository, offline, url = channel
    target = publish(repository, release_wheel(tmp_path, "0.9.0"), "0.9.0", offline / "targets.pem")
    slots = pinned(tmp_path / "gateway" / "updates", repository)
    release = fetch_release(slots.root, url, target.path, "0.9.0")
    assert release.path.read_bytes() == (repository.targets / target.path).read_bytes()
    assert release.sha256 == target.hashes["sha256"] and target.custom["balans"]["version"] == "0.9.0"
    slot = slots.install(release.path, "0.9.0")
    assert slot == "a" and (slots.path("a") / "balans-0.9.0.dist-info").is_dir()
    slots.switch(slot, "0.9.0", 60)
    pointer = slots.read()
    assert pointer["slot"] == "a" and pointer["trial"]["version"] == "0.9.0"
    assert pointer["previous"] == {"slot": None, "version": software_version(), "sha256": None}
    ran = subprocess.run([sys.executable, "-P", "-c", PRINT_VERSION], env=child_environment(slots), capture_output=True,
                         text=True, timeout=30, check=True)
    assert ran.stdout.strip() == "0.9.0"  # the slot's balans, not the base install's
    assert slots.confirm("0.9.0")["status"] == "applied" and slots.read()["trial"] is None
    assert slots.inactive() == "b"  # the next release goes beside it, the running one stays whole


def test_a_tampered_package_is_refused_and_nothing_is_installed(channel, tmp_path):
    repository, offline, url = channel
    target = publish(repository, release_wheel(tmp_path, "0.9.0"), "0.9.0", offline / "targets.pem")
    stored = repository.targets / target.path
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed on the cloud's disk: same name, same length
    stored.write_bytes(bytes(data))
    slots = pinned(tmp_path / "gateway" / "updates", repository)
    with pytest.raises(UpdateFailed, match="LengthOrHashMismatch"):
        fetch_release(slots.root, url, target.path)
    stored.write_bytes(bytes(data) + b"more")  # and a longer one
    with pytest.raises(UpdateFailed, match="did not verify"):
        fetch_release(slots.root, url, target.path)
    assert not (slots.root / "slots").exists() and list((slots.root / "downloads").iterdir()) == []


def test_metadata_signed_by_a_key_the_root_does_not_trust_is_refused(channel, tmp_path):
    """Someone who took the cloud has its online keys, not the operator's targets key: the package they add is
    signed by a key of their own and refused, and so is a channel whose root is not the one installed."""
    repository, offline, url = channel
    publish(repository, release_wheel(tmp_path, "0.9.0"), "0.9.0", offline / "targets.pem")
    slots = pinned(tmp_path / "gateway" / "updates", repository)
    fetch_release(slots.root, url, "balans-0.9.0-py3-none-any.whl")  # the gateway trusts this channel
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
    with pytest.raises(UpdateFailed, match="UnsignedMetadataError"):
        fetch_release(slots.root, url, evil.name)
    other = Channel(tmp_path / "another")
    init_keys(other, tmp_path / "another-offline")
    foreign = pinned(tmp_path / "pinned" / "updates", other)  # the installer pinned another channel's root
    with pytest.raises(UpdateFailed, match="did not verify"):
        fetch_release(foreign.root, url, "balans-0.9.0-py3-none-any.whl")
    assert not (slots.root / "slots").exists() and not (foreign.root / "slots").exists()


def test_a_gateway_with_no_root_pinned_trusts_only_one_the_organisation_signed(cloud, channel, tmp_path):
    """Nothing pinned (enrolled before the cloud had a channel): the gateway fetches no root unsigned, it waits; the
    heartbeat's answer brings the channel's first root signed with the organisation's key, which the gateway checks
    with the key it took at enrolment and pins. A root signed by another key, a changed root, or a root that is not
    one is refused; a root already pinned is never replaced by the cloud's."""
    repository, offline, url = channel
    app = cloud[0]
    publish(repository, release_wheel(tmp_path, "0.9.0"), "0.9.0", offline / "targets.pem")
    slots = Slots(tmp_path / "gateway" / "updates")
    with pytest.raises(UpdateFailed, match="no trusted root for the release channel yet"):
        fetch_release(slots.root, url, "balans-0.9.0-py3-none-any.whl")
    assert not (slots.root / "metadata").exists(), "nothing was fetched"
    with app.app_context(), session_scope(app) as db:
        org = create_organisation(db, "ОСББ «Корінь»", "osbb", actor="test")
        gateway = GatewayRow(org_id=org.id, code="gw-root")
        org_pub = tmp_path / "org.pub"
        org_pub.write_text(org_key(db, org.id).public_key, encoding="ascii")
        assert root_offer(db, gateway, {"root": "ab" * 32}) is None, "a gateway with a root pinned gets none"
        assert root_offer(db, gateway, {"slot": "base"}) is None, "nor one too old to say"
        offer = root_offer(db, gateway, {"root": None})
        other_org = create_organisation(db, "ОСББ «Чужий»", "osbb", actor="test")
        foreign = root_offer(db, GatewayRow(org_id=other_org.id, code="gw-other"), {"root": None})
    body = (repository.metadata / "1.root.json").read_bytes()
    assert unb64(offer["body"], "body") == body
    changed = {**offer, "body": b64(body.replace(b'"version": 1', b'"version": 7'))}
    for bad in (foreign, changed, {**offer, "body": b64(b"{}")}, {"body": "not base64!"}, "root"):
        assert pin_offered_root(slots.root, bad, org_pub) is False, bad
        assert pinned_digest(slots.root) is None
    assert pin_offered_root(slots.root, offer, None) is False, "no organisation key: nothing to check it with"
    assert pin_offered_root(slots.root, offer, org_pub) is True
    assert pinned_digest(slots.root) == hashlib.sha256(body).hexdigest()
    assert fetch_release(slots.root, url, "balans-0.9.0-py3-none-any.whl") is not None
    other = Channel(tmp_path / "another")
    init_keys(other, tmp_path / "another-offline")
    assert pin_offered_root(slots.root, offer, org_pub) is False and pinned_digest(slots.root) == \
        hashlib.sha256(body).hexdigest(), "a pinned root stays"


def test_a_root_pinned_by_hand_governs_every_update_from_then_on(channel, tmp_path):
    """A gateway whose ngclient kept a root of its own (it trusted its cloud's first root before roots came signed)
    is then given the operator's root by hand (``trust``): the pinned root is where every later update starts."""
    repository, offline, url = channel
    publish(repository, release_wheel(tmp_path, "0.9.0"), "0.9.0", offline / "targets.pem")
    slots = pinned(tmp_path / "gateway" / "updates", repository)
    assert fetch_release(slots.root, url, "balans-0.9.0-py3-none-any.whl") is not None
    (slots.root / "root.json").unlink()  # what such a gateway has: only the root ngclient keeps
    assert (slots.root / "metadata" / "root.json").exists()
    assert fetch_release(slots.root, url, "balans-0.9.0-py3-none-any.whl") is not None
    other = Channel(tmp_path / "another")
    init_keys(other, tmp_path / "another-offline")
    (slots.root / "root.json").write_bytes((other.metadata / "1.root.json").read_bytes())  # another channel's
    with pytest.raises(UpdateFailed, match="did not verify"):
        fetch_release(slots.root, url, "balans-0.9.0-py3-none-any.whl")
    (slots.root / "root.json").write_bytes((repository.metadata / "1.root.json").read_bytes())  # the right one
    assert fetch_release(slots.root, url, "balans-0.9.0-py3-none-any.whl") is not None


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
    assert pointer["slot"] is None and pointer["trial"] is None and is_refused(pointer, "0.9.0", None)
    assert pointer["last"]["status"] == "rolled_back" and "exited 3 times" in pointer["last"]["reason"]
    assert time.monotonic() - started < 2.5  # the crashes, not the deadline, decided it


def test_the_launcher_rolls_back_a_version_that_misses_its_health_checks_deadline(tmp_path):
    slots = _installed(tmp_path, "0.9.0")
    assert supervise(slots, _gateway_script("time.sleep(60)")) == 0
    last = slots.read()["last"]
    assert last["status"] == "rolled_back" and last["version"] == "0.9.0"
    assert "health check not passed within 2 s of running" in last["reason"]


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
        shas = {}
        for version, files in (("0.9.0", {}),
                               # 0.9.1 cannot start: its edge package fails on import, as a bad release would
                               ("0.9.1", {"edge/__init__.py": "raise RuntimeError('a broken release')\n"})):
            target = publish(repository, release_wheel(tmp_path, version, files), version,
                             tmp_path / "offline" / "targets.pem")
            record_release(db, version, target.path, target.hashes["sha256"], target.length, "test")
            shas[version] = target.hashes["sha256"]
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
            # enrolled without a root: the heartbeat's answer brought the channel's, signed by the organisation
            assert (state / "updates" / "root.json").read_bytes() == (repository.metadata / "1.root.json").read_bytes()
            with session_scope(app) as db:
                start_rollout(db, "0.9.1", 100, [], "test")
            row = wait_for(lambda: gateway_row("0.9.0", ("0.9.1", "rolled_back")), "0.9.1 rolled back")
            assert row["slot"] == "a" and "before passing its health check" in row["last"]["reason"]
            assert row["target"] == "0.9.1"  # still the rollout's version, but never offered to it again
            pointer = json.loads((state / "updates" / "current.json").read_text(encoding="utf-8"))
            assert pointer["slot"] == "a" and pointer["version"] == "0.9.0"
            assert pointer["refused"] == [{"version": "0.9.1", "sha256": shas["0.9.1"]}]  # that package, by its hash
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
        pointer = slots.read()
        assert pointer["last"]["status"] == "rolled_back" and "python -m edge.launcher" in pointer["last"]["reason"]
        assert pointer["refused"] == [] and pointer["slot"] is None  # the package is not to blame: not blocked
        slots.switch("b", software_version(), -1)  # this very version on trial, its deadline already gone
        agent = UpdateAgent(gateway, restart=lambda: restarts.append("restart"))
        assert agent.report()["trial"] == software_version()
        asyncio.run(agent.after_heartbeat({"update": {"version": "0.9.0", "target": "x.whl"}}))
        last = slots.read()["last"]
        assert last["status"] == "rolled_back" and "health check not passed" in last["reason"]
        assert "polls 0" in last["reason"] and restarts == ["restart"]
    finally:
        gateway.store.close()


# --- what a failed update blocks, and what it does not -----------------------------------------------------------
REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def agent(channel, seed_scenario, tmp_path, monkeypatch):
    """A gateway (not polling) whose cloud is the test's, run as edge/launcher.py runs it: the variable the launcher
    sets names this gateway's updates folder. ``agent.restarts``: the versions it asked to be restarted into."""
    path = tmp_path / "gw" / "gateway.toml"
    path.parent.mkdir()
    path.write_text(config_toml_from_scenario(seed_scenario, gateway_id="gw-test", host="127.0.0.1",
                                              port=free_port(), cloud_url=channel[2], poll_seconds=900),
                    encoding="utf-8")
    config = load_config(path)
    slots = pinned(config.database.parent / "updates", channel[0])
    monkeypatch.setenv(STATE_VARIABLE, child_environment(slots)[STATE_VARIABLE])
    gateway = Gateway(config)
    restarts: list[str] = []
    found = UpdateAgent(gateway, restart=lambda: restarts.append(found.slots.read()["trial"]["version"]))
    found.restarts = restarts
    yield found
    gateway.store.close()


def _offer(version: str) -> dict:
    return {"update": {"version": version, "target": f"balans-{version}-py3-none-any.whl"}}


def _resign(repository: Channel, role: str, snapshot_version: int | None = None) -> int:
    """``role`` (snapshot or timestamp) one version up, signed by the cloud's online key, as refresh() does."""
    signed = Metadata.from_file(str(repository.metadata / f"{role}.json"))
    signed.signed.version += 1
    if snapshot_version is not None:
        signed.signed.snapshot_meta.version = snapshot_version
    signed.signatures.clear()
    signed.sign(load_signer(repository.online_key(role)))
    signed.to_file(str(repository.metadata / f"{role}.json"), JSONSerializer(compact=False))
    return signed.signed.version


def _retry_now(slots: Slots) -> None:
    with slots.changing() as pointer:
        pointer["retry"]["not_before"] = 0


def test_a_release_that_does_not_verify_this_time_is_tried_again_later_and_not_blocked(agent, channel, tmp_path):
    """A proxy's login page instead of snapshot.json, then metadata read while the cloud re-signs it: both are
    failures of the moment. Each is reported, waited out (longer the second time), and the release is installed
    once the channel reads whole."""
    repository, offline, _ = channel
    target = publish(repository, release_wheel(tmp_path, "0.9.0"), "0.9.0", offline / "targets.pem")
    snapshot = repository.metadata / "snapshot.json"
    signed = snapshot.read_bytes()
    snapshot.write_text("<html><body>Please sign in to the hotel Wi-Fi</body></html>", encoding="utf-8")
    assert asyncio.run(agent.after_heartbeat(_offer("0.9.0"))) is True  # reported at once
    pointer = agent.slots.read()
    assert pointer["refused"] == [] and pointer["trial"] is None and pointer["last"]["status"] == "refused"
    assert "tried again after" in pointer["last"]["reason"] and "did not verify" in pointer["last"]["reason"]
    first_wait = pointer["retry"]["not_before"] - time.time()
    assert 200 < first_wait <= 300
    snapshot.write_bytes(signed)
    assert asyncio.run(agent.after_heartbeat(_offer("0.9.0"))) is False  # not before its time
    assert agent.slots.read() == pointer and agent.restarts == []
    _retry_now(agent.slots)
    snapshot_version = _resign(repository, "snapshot")  # the cloud mid re-sign: a new snapshot, the old timestamp
    assert asyncio.run(agent.after_heartbeat(_offer("0.9.0"))) is True
    pointer = agent.slots.read()
    assert "BadVersionNumberError" in pointer["last"]["reason"] and pointer["refused"] == []
    assert pointer["retry"]["failures"] == 2 and pointer["retry"]["not_before"] - time.time() > first_wait + 200
    _resign(repository, "timestamp", snapshot_version)  # … and the re-sign done
    _retry_now(agent.slots)
    assert asyncio.run(agent.after_heartbeat(_offer("0.9.0"))) is False
    pointer = agent.slots.read()
    assert agent.restarts == ["0.9.0"] and pointer["retry"] is None
    assert pointer["trial"]["version"] == "0.9.0" and pointer["trial"]["sha256"] == target.hashes["sha256"]


def test_a_verified_package_that_does_not_install_is_blocked_by_its_hash(agent, channel, tmp_path):
    repository, offline, _ = channel
    (tmp_path / "wrong").mkdir()
    wrong = release_wheel(tmp_path / "wrong", "0.9.3").rename(tmp_path / "balans-0.9.2-py3-none-any.whl")
    target = publish(repository, wrong, "0.9.2", offline / "targets.pem")  # signed, but it is balans 0.9.3 inside
    assert asyncio.run(agent.after_heartbeat(_offer("0.9.2"))) is True
    pointer = agent.slots.read()
    assert pointer["refused"] == [{"version": "0.9.2", "sha256": target.hashes["sha256"]}]
    assert pointer["last"]["status"] == "refused" and "installs ['balans-0.9.3.dist-info']" in pointer["last"]["reason"]
    assert pointer["trial"] is None and agent.restarts == [] and not (agent.slots.root / "slots" / "a").exists()
    for cached in (agent.slots.root / "downloads").iterdir():
        cached.unlink()
    assert asyncio.run(agent.after_heartbeat(_offer("0.9.2"))) is False  # the same signed bytes: not again
    assert list((agent.slots.root / "downloads").iterdir()) == [] and agent.slots.read()["last"] == pointer["last"]
    assert not is_refused(pointer, "0.9.2", "0" * 64)  # other bytes of that version would be tried


def test_a_forged_offer_is_ignored_and_blocks_nothing(agent, channel, tmp_path):
    """What a man in the middle of an http cloud could put in the heartbeat's answer: a file that is not a
    release, text with control characters (which the cloud would refuse in every later heartbeat), a version
    that is none. Nothing of it reaches the pointer; the real release is still taken."""
    repository, offline, url = channel
    target = publish(repository, release_wheel(tmp_path, "0.9.0"), "0.9.0", offline / "targets.pem")
    for offer in ({"version": "0.9.0", "target": "no-such.whl"},
                  {"version": "0.9.0\x1b[2J", "target": "balans-0.9.0\x1b[2J-py3-none-any.whl"},
                  {"version": "0.9.0\n", "target": "balans-0.9.0\n-py3-none-any.whl"},
                  {"version": "9" * 60, "target": f"balans-{'9' * 60}-py3-none-any.whl"},
                  {"version": "0.9.0", "target": "../balans-0.9.0-py3-none-any.whl"},
                  {"version": 9, "target": "balans-9-py3-none-any.whl"}, ["0.9.0"], "0.9.0"):
        assert asyncio.run(agent.after_heartbeat({"update": offer})) is False, offer
    assert not agent.slots.pointer_path.exists() and agent.report()["last"] is None
    assert asyncio.run(agent.after_heartbeat(_offer("0.9.1"))) is True  # well formed, but not signed: not blocked
    pointer = agent.slots.read()
    assert pointer["refused"] == [] and "not in the release channel's signed targets" in pointer["last"]["reason"]
    assert asyncio.run(agent.after_heartbeat(_offer("0.9.0"))) is False and agent.restarts == ["0.9.0"]
    # the signed targets bind each file to its version, and the gateway checks it
    with pytest.raises(UpdateFailed, match=r"signed as balans 0\.9\.0, offered as 0\.9\.1"):
        fetch_release(pinned(tmp_path / "other" / "updates", repository).root, url, target.path, "0.9.1")


def test_what_goes_into_the_heartbeat_report_is_plain_text_and_short(tmp_path):
    slots = Slots(tmp_path / "updates")
    reports = [slots.refuse("0.9.0", "ab" * 32, "pip: \x1b[31mERROR\x1b[0m\r\n\x00" + "x" * 1000)["reason"],
               slots.defer("0.9.1", "a proxy answered \x07\x85" + "y" * 1000) and slots.read()["last"]["reason"]]
    slots.switch("a", "0.9.2", 60)
    reports.append(slots.roll_back("0.9.2", "crashed:\x1b]0;owned\x07" + "z" * 1000)["reason"])
    for reason in reports:
        assert not CONTROL.search(reason) and "\x85" not in reason and len(reason) <= 300, reason


def test_a_gateway_not_under_the_launcher_takes_no_offer_and_says_why(agent, channel, tmp_path, monkeypatch):
    repository, offline, _ = channel
    publish(repository, release_wheel(tmp_path, "0.9.0"), "0.9.0", offline / "targets.pem")
    for launched_for in (None, str(tmp_path / "another" / "updates")):  # no launcher; one serving another folder
        if launched_for is None:
            monkeypatch.delenv(STATE_VARIABLE)
        else:
            monkeypatch.setenv(STATE_VARIABLE, launched_for)
        outside = UpdateAgent(agent.gateway, restart=lambda: pytest.fail("restarted outside the launcher"))
        assert outside.report()["note"] == NOT_LAUNCHED
        assert asyncio.run(outside.after_heartbeat(_offer("0.9.0"))) is False
        assert not outside.slots.pointer_path.exists()  # nothing fetched, nothing blocked
    assert "note" not in agent.report()


def test_the_shipped_unit_runs_the_gateway_under_the_launcher_serving_the_gateways_updates_folder(tmp_path):
    unit = (REPOSITORY / "provisioning" / "balans-gateway.service").read_text(encoding="utf-8")
    command = shlex.split(next(line for line in unit.splitlines() if line.startswith("ExecStart="))[10:])
    assert command[:7] == ["/opt/balans/.venv/bin/python", "-m", "edge.launcher", "--config",
                           "/etc/balans/gateway.toml", "run", "--"]
    assert command[7:] == ["/opt/balans/.venv/bin/balans", "edge", "run", "--config", "/etc/balans/gateway.toml"]
    # the same command line here: the folder the launcher serves is the one the gateway's UpdateAgent uses
    path = tmp_path / "etc" / "gateway.toml"
    path.parent.mkdir()
    path.write_text('[gateway]\nid = "gw-unit"\nsite = "TP-118"\ndatabase = "gateway.sqlite3"\n'
                    '[cloud]\nurl = "http://127.0.0.1:9"\n', encoding="utf-8")
    told = tmp_path / "told"
    script = f"import os, pathlib; pathlib.Path({str(told)!r}).write_text(os.environ[{STATE_VARIABLE!r}])"
    subprocess.run([sys.executable, "-m", "edge.launcher", "--config", str(path), "run", "--", sys.executable, "-c",
                    script], check=True, timeout=30, capture_output=True, cwd=REPOSITORY)
    assert told.read_text() == str((load_config(path).database.parent / "updates").resolve())


def test_the_launcher_and_the_gateway_both_rolling_back_roll_back_once(tmp_path):
    """At the deadline both may decide it; the second finds nothing to do, and never blocks the good version it
    went back to."""
    slots = _installed(tmp_path, "0.9.0")
    slots.confirm("0.9.0")
    (tmp_path / "next").mkdir()
    slots.switch(slots.install(release_wheel(tmp_path / "next", "0.9.1"), "0.9.1"), "0.9.1", 60, "ab" * 32)
    assert slots.roll_back("0.9.1", "the launcher: deadline")["version"] == "0.9.1"
    assert slots.roll_back("0.9.1", "the gateway: deadline") is None
    pointer = slots.read()
    assert (pointer["slot"], pointer["version"]) == ("a", "0.9.0") and pointer["last"]["reason"] == "the launcher: deadline"
    assert pointer["refused"] == [{"version": "0.9.1", "sha256": "ab" * 32}] and not is_refused(pointer, "0.9.0", None)
    slots.switch("b", "0.9.2", 60)
    assert slots.roll_back("0.9.1", "late") is None and slots.read()["trial"]["version"] == "0.9.2"
    assert slots.confirm("0.9.1") is None and slots.read()["trial"]["version"] == "0.9.2"


def test_processes_changing_the_pointer_at_once_lose_no_change(tmp_path):
    slots = Slots(tmp_path / "updates")
    slots.switch("a", "0.9.0", 600)
    script = (f"from pathlib import Path\nfrom edge.update import Slots\nslots = Slots(Path({str(slots.root)!r}))\n"
              "for _ in range(60):\n    slots.count_exit('0.9.0')\n")
    writers = [subprocess.Popen([sys.executable, "-c", script], cwd=REPOSITORY) for _ in range(3)]
    assert [writer.wait(60) for writer in writers] == [0, 0, 0]
    assert slots.read()["trial"]["exits"] == 180
    assert sorted(p.name for p in slots.root.iterdir()) == ["current.json", "current.lock"]  # no temporary left


def test_two_writers_of_one_file_never_share_a_temporary(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text("old", encoding="utf-8")
    path.chmod(0o640)
    failures = []

    def write(text: str) -> None:
        try:
            for _ in range(150):
                write_atomically(path, text)
        except OSError as exc:
            failures.append(exc)

    writers = [threading.Thread(target=write, args=(letter * 5000,)) for letter in "ab"]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert failures == [] and path.read_text(encoding="utf-8") in {"a" * 5000, "b" * 5000}
    assert path.stat().st_mode & 0o777 == 0o640 and [p.name for p in tmp_path.iterdir()] == ["gateway.toml"]


# --- what the signed targets say: withdrawn releases, no moving back, a re-offer ---------------------------------
def _sign_targets(repository: Channel, offline: Path, change) -> None:
    """``change(targets)`` on the channel's signed targets, signed with the operator's targets key as a release
    or a withdrawal is (custom: {"balans": {"version", "withdrawn"}}); snapshot and timestamp follow online."""
    targets = Metadata.from_file(str(repository.metadata / "targets.json"))
    change(targets.signed)
    targets.signed.version += 1
    targets.signatures.clear()
    targets.sign(load_signer(offline / "targets.pem"))
    targets.to_file(str(repository.metadata / "targets.json"), JSONSerializer(compact=False))
    snapshot = Metadata.from_file(str(repository.metadata / "snapshot.json"))
    snapshot.signed.meta["targets.json"].version = targets.signed.version
    snapshot.signed.version += 1
    snapshot.signatures.clear()
    snapshot.sign(load_signer(repository.online_key("snapshot")))
    snapshot.to_file(str(repository.metadata / "snapshot.json"), JSONSerializer(compact=False))
    _resign(repository, "timestamp", snapshot.signed.version)


def _withdraw(repository: Channel, offline: Path, version: str) -> None:
    def change(targets):
        entry = targets.targets[f"balans-{version}-py3-none-any.whl"]
        entry.unrecognized_fields["custom"] = {"balans": {"version": version, "withdrawn": True}}
    _sign_targets(repository, offline, change)


def _published(repository: Channel, offline: Path, tmp_path: Path, version: str):
    (tmp_path / version).mkdir(exist_ok=True)
    return publish(repository, release_wheel(tmp_path / version, version), version, offline / "targets.pem")


def test_a_withdrawn_release_is_never_installed_reported_once_and_not_blocked(agent, channel, tmp_path):
    repository, offline, _ = channel
    _published(repository, offline, tmp_path, "0.9.0")
    _withdraw(repository, offline, "0.9.0")
    assert asyncio.run(agent.after_heartbeat(_offer("0.9.0"))) is True  # reported at once
    pointer = agent.slots.read()
    last = pointer["last"]
    assert (last["version"], last["status"]) == ("0.9.0", "refused")
    assert last["reason"] == "balans 0.9.0 is withdrawn in the signed targets: not installed"
    assert pointer["refused"] == [] and pointer["trial"] is None and agent.restarts == []
    assert list((agent.slots.root / "downloads").iterdir()) == []  # not even downloaded
    assert asyncio.run(agent.after_heartbeat(_offer("0.9.0"))) is False  # not looked at before its time
    again = {"update": {**_offer("0.9.0")["update"], "again": True}}
    assert asyncio.run(agent.after_heartbeat(again)) is False  # a re-offer changes nothing the targets say
    assert agent.slots.read() == pointer
    _retry_now(agent.slots)
    assert asyncio.run(agent.after_heartbeat(_offer("0.9.0"))) is False  # looked at again: nothing new to say
    assert agent.slots.read()["last"] == last and agent.restarts == []


def test_an_older_release_is_not_installed_unless_the_running_one_is_withdrawn(agent, channel, tmp_path):
    """The gateway runs this very version (the base install's, published in the channel). An offer of an older
    one is refused; once the one it runs is withdrawn in the signed targets, the older one is installed: that is
    how a bad release is taken back fleet-wide."""
    repository, offline, _ = channel
    running, older = software_version(), "0.0.1"
    assert is_older(older, running)
    _published(repository, offline, tmp_path, running)
    _published(repository, offline, tmp_path, older)
    assert asyncio.run(agent.after_heartbeat(_offer(older))) is True
    pointer = agent.slots.read()
    assert pointer["last"]["reason"] == (f"balans {older} is older than {running}, which runs here and is not "
                                         "withdrawn in the signed targets: not moved back")
    assert pointer["refused"] == [] and agent.restarts == []
    _withdraw(repository, offline, running)
    _retry_now(agent.slots)
    assert asyncio.run(agent.after_heartbeat(_offer(older))) is False
    assert agent.restarts == [older] and agent.slots.read()["trial"]["version"] == older


def test_a_base_install_newer_than_the_rollout_is_not_moved_back(agent, channel, tmp_path):
    """A gateway imaged with a base install newer than the rollout in force (its version not even published in
    the channel): the rollout's offer is refused with the reason, checked again only after the retry wait."""
    repository, offline, _ = channel
    older = "0.0.1"
    _published(repository, offline, tmp_path, older)
    assert asyncio.run(agent.after_heartbeat(_offer(older))) is True
    pointer = agent.slots.read()
    assert "not moved back" in pointer["last"]["reason"] and agent.restarts == []
    assert 200 < pointer["retry"]["not_before"] - time.time() <= 300
    for _ in range(3):  # heartbeat after heartbeat: no fetch, no new report
        assert asyncio.run(agent.after_heartbeat(_offer(older))) is False
    assert agent.slots.read() == pointer


def test_a_re_offer_drops_the_gateways_own_refusal_and_tries_once_more(agent, channel, tmp_path):
    """0.9.0 was rolled back here (its trial failed); the cause fixed on site, the operator re-offers it: the
    heartbeat's answer says again=true, and the gateway forgets its refusal and installs it. Without again, the
    refusal stands."""
    repository, offline, _ = channel
    target = _published(repository, offline, tmp_path, "0.9.0")
    agent.slots.switch("a", "0.9.0", 60, target.hashes["sha256"])
    agent.slots.roll_back("0.9.0", "health check not passed within 600 s of running")
    assert is_refused(agent.slots.read(), "0.9.0", target.hashes["sha256"])
    assert asyncio.run(agent.after_heartbeat(_offer("0.9.0"))) is False and agent.restarts == []
    again = {"update": {**_offer("0.9.0")["update"], "again": True}}
    assert asyncio.run(agent.after_heartbeat(again)) is False
    pointer = agent.slots.read()
    assert agent.restarts == ["0.9.0"] and pointer["refused"] == [] and pointer["trial"]["version"] == "0.9.0"
