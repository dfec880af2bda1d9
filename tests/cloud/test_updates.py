"""The cloud's side of gateway software updates (docs/updates.md), over a real port on SQLite and PostgreSQL: the
release channel made and published from the command line, a rollout offered in the heartbeat's answer to its
cohort and to the gateways named only, each gateway's outcome stored, audited, shown on the page and in the JSON,
a rolled-back version never offered again to that gateway, and only the operator starting a rollout."""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from werkzeug.serving import make_server

from cloud.accounts.organisations import create_organisation, create_site, create_user
from cloud.models import AuditLog, Gateway, GatewayUpdate, Organisation, SoftwareRollout
from cloud.updates.rollout import cohort
from edge.config import load_config
from edge.update import Slots
from provisioning.enrolment import EnrolmentFailed, pin_release_root, release_root_path
from provisioning.ports import free_port
from shared.batch import b64, canonical_bytes, private_key_pem
from tests.cloud.conftest import enrol
from tests.cloud.test_remote import bearer
from tests.edge.release_wheels import release_wheel

pytestmark = pytest.mark.timeout(60)
PASSWORD = "correct horse battery"
PASSPHRASE = "the operator's long release passphrase"
CODES = [f"gw-tp{n}" for n in range(200, 212)]


@pytest.fixture
def fleet(app, client, db, gateway, seed_scenario, tmp_path, monkeypatch):
    """The seed's station and a dozen more gateways on the same site, a channel with 0.2.0 published, the cloud
    on a real port."""
    app.config["UPDATES_DIR"] = str(tmp_path / "updates")
    keys = {gateway.code: gateway.key}
    for code in CODES:
        keys[code] = enrol(client, db, seed_scenario, gateway.site, code, only=[])
    runner = app.test_cli_runner()
    monkeypatch.setenv("BALANS_RELEASE_PASSPHRASE", PASSPHRASE)  # the offline keys are encrypted with it
    made = runner.invoke(args=["release", "init-keys", "--offline-dir", str(tmp_path / "offline")])
    assert made.exit_code == 0, made.output
    published = runner.invoke(args=["release", "publish", str(release_wheel(tmp_path, "0.2.0")), "--version", "0.2.0",
                                    "--targets-key", str(tmp_path / "offline" / "targets.pem"), "--json"])
    assert published.exit_code == 0, published.output
    assert json.loads(published.output)["target"] == "balans-0.2.0-py3-none-any.whl"
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"port": server.server_port, "keys": keys, "runner": runner, "offline": tmp_path / "offline",
           "org_id": gateway.org_id, "tmp": tmp_path}
    server.shutdown()


def beat(fleet, code: str, n: int, running: str = "0.1.0", update: dict | None = None) -> dict:
    body = canonical_bytes({"v": 1, "gateway": code, "sent": "2026-10-05T10:00:00.000000Z", "n": n,
                            "health": {"backlog": 0, "meters_answering": 1, "meters_configured": 1,
                                       "software_version": running},
                            "config": {"version": 0, "last": None},
                            "update": update or {"slot": "base", "version": running, "trial": None, "last": None}})
    connection = http.client.HTTPConnection("127.0.0.1", fleet["port"], timeout=30)
    try:
        connection.request("POST", f"/api/v1/gateways/{code}/heartbeat", body=body, headers={
            "Content-Type": "application/json", "X-Balans-Signature": b64(fleet["keys"][code].sign(body))})
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        return answer
    finally:
        connection.close()


def test_cohorts_are_stable_spread_evenly_and_only_grow_with_the_percent():
    codes = [f"gw-{n}" for n in range(2000)]
    at_10 = {c for c in codes if cohort(c) < 10}
    at_30 = {c for c in codes if cohort(c) < 30}
    assert at_10 < at_30 and 120 <= len(at_10) <= 280 and 480 <= len(at_30) <= 720
    assert cohort("gw-tp118") == cohort("gw-tp118") and all(0 <= cohort(c) < 100 for c in codes)


def test_a_rollout_reaches_its_cohort_and_the_gateways_named_only(fleet, db):
    everyone = ["gw-tp118", *CODES]
    assert all(beat(fleet, code, 1)["update"] is None for code in everyone)  # published is not offered
    percent = sorted(cohort(code) for code in everyone)[len(everyone) // 2]  # about half of them
    named = next(code for code in everyone if cohort(code) >= percent)
    result = fleet["runner"].invoke(args=["release", "rollout", "0.2.0", "--percent", str(percent),
                                          "--gateways", named])
    assert result.exit_code == 0, result.output
    offered = {code for code in everyone if beat(fleet, code, 2)["update"] is not None}
    assert offered == {code for code in everyone if cohort(code) < percent} | {named}
    assert 0 < len(offered) < len(everyone)
    assert beat(fleet, named, 3)["update"] == {"version": "0.2.0", "target": "balans-0.2.0-py3-none-any.whl"}
    assert beat(fleet, named, 4, running="0.2.0")["update"] is None  # runs it already
    with db() as session:
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "release.rollout"))
        assert entry.after["percent"] == percent and entry.after["gateways"] == [named]


def test_outcomes_are_stored_shown_and_a_rolled_back_version_is_not_offered_again(fleet, db):
    assert fleet["runner"].invoke(args=["release", "rollout", "0.2.0", "--percent", "100"]).exit_code == 0
    applied, failed = CODES[0], CODES[1]
    assert beat(fleet, failed, 1)["update"]["version"] == "0.2.0"
    beat(fleet, applied, 1, running="0.2.0", update={"slot": "a", "version": "0.2.0", "trial": None, "last": {
        "version": "0.2.0", "status": "applied", "slot": "a", "at": "2026-10-05T10:00:00Z"}})
    rolled_back = {"version": "0.2.0", "status": "rolled_back", "slot": None,
                   "reason": "exited 3 times before passing its health check", "at": "2026-10-05T10:00:00Z"}
    answer = beat(fleet, failed, 2, update={"slot": "base", "version": "0.1.0", "trial": None, "last": rolled_back})
    assert answer["update"] is None  # told in the very heartbeat that reported it
    assert beat(fleet, failed, 3, update={"slot": "base", "version": "0.1.0", "trial": None,
                                          "last": rolled_back})["update"] is None
    with db() as session:
        rows = {row.version + row.status: row for row in session.scalars(select(GatewayUpdate))}
        assert set(rows) == {"0.2.0applied", "0.2.0rolled_back"}
        assert rows["0.2.0rolled_back"].reason.startswith("exited 3 times")
        assert [e.after["status"] for e in session.scalars(select(AuditLog).where(
            AuditLog.action == "gateway.software_update").order_by(AuditLog.id))] == ["applied", "rolled_back"]
        org = session.get(Organisation, fleet["org_id"])
        create_user(session, "admin@coop.ua", PASSWORD, "org_admin", org)
    headers = bearer(db, fleet["org_id"])
    request = urllib.request.Request(f"http://127.0.0.1:{fleet['port']}/api/v1/updates/status", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        state = json.loads(response.read())
    shown = {row["gateway"]: row for row in state["gateways"]}
    assert shown[failed]["last"]["status"] == "rolled_back" and shown[failed]["running"] == "0.1.0"
    assert shown[applied]["running"] == "0.2.0" and shown[applied]["slot"] == "a"
    assert state["rollout"]["percent"] == 100 and state["releases"][0]["version"] == "0.2.0"
    page = signed_in(fleet, "admin@coop.ua").open(f"http://127.0.0.1:{fleet['port']}/admin/updates", timeout=10)
    html = page.read().decode()
    assert "exited 3 times before passing its health check" in html and f'id="gw-{failed}"' in html
    assert 'action="/admin/updates/rollout"' not in html  # an org admin sees, the operator rolls out


def signed_in(fleet, email: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    opener.open(f"http://127.0.0.1:{fleet['port']}/login", data=urllib.parse.urlencode(
        {"email": email, "password": PASSWORD}).encode(), timeout=10)
    return opener


def test_only_the_operator_rolls_out_and_a_bad_release_is_refused_clearly(fleet, db):
    with db() as session:
        org = session.get(Organisation, fleet["org_id"])
        create_user(session, "operator@balans.ua", PASSWORD, "operator", org)
        create_user(session, "admin@coop.ua", PASSWORD, "org_admin", org)
    url = f"http://127.0.0.1:{fleet['port']}/admin/updates/rollout"
    form = urllib.parse.urlencode({"version": "0.2.0", "percent": "25", "gateways": CODES[0]}).encode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        signed_in(fleet, "admin@coop.ua").open(url, data=form, timeout=10)
    assert refused.value.code == 403
    operator = signed_in(fleet, "operator@balans.ua")
    done = operator.open(url, data=form, timeout=10)
    assert done.status == 200 and done.url.endswith("/admin/updates")
    wrong = operator.open(url, data=urllib.parse.urlencode({"version": "0.2.0", "percent": "5",
                                                            "gateways": "gw-nowhere"}).encode(), timeout=10)
    assert "Немає таких шлюзів: gw-nowhere." in wrong.read().decode()  # said in the page's language
    with db() as session:
        rollout = session.scalar(select(SoftwareRollout))
        assert (rollout.version, rollout.percent, rollout.gateways, rollout.started_by) == \
            ("0.2.0", 25, [CODES[0]], "operator@balans.ua")
    runner, tmp = fleet["runner"], fleet["tmp"]
    stranger = tmp / "stranger.pem"
    stranger.write_bytes(private_key_pem(Ed25519PrivateKey.generate()))
    for args, says in (
            (["publish", str(release_wheel(tmp, "0.3.0")), "--version", "0.3.0", "--targets-key", str(stranger)],
             "targets-key: "),
            (["publish", str(release_wheel(tmp, "0.3.0")), "--version", "0.4.0", "--targets-key",
              str(fleet["offline"] / "targets.pem")], "is not balans 0.4.0"),
            (["publish", str(release_wheel(tmp, "0.2.0")), "--version", "0.2.0", "--targets-key",
              str(fleet["offline"] / "targets.pem")], "0.2.0 is already published"),
            (["rollout", "9.9.9", "--percent", "10"], "version: version '9.9.9' is not published"),
            (["rollout", "0.2.0", "--gateways", "gw-nowhere"], "no such gateway: gw-nowhere"),
            (["init-keys", "--offline-dir", str(tmp / "again")], "already holds a release channel")):
        result = runner.invoke(args=["release", *args])
        assert result.exit_code != 0 and says in result.output, result.output
    for name in ("../keys/timestamp.pem", "root.json.tmp", "7.root.json", "keys"):
        connection = http.client.HTTPConnection("127.0.0.1", fleet["port"], timeout=10)
        connection.request("GET", f"/api/v1/updates/metadata/{name}")
        assert connection.getresponse().status == 404, name
        connection.close()


def test_enrolment_pins_the_channels_root_from_the_cloud_or_the_operators_file(fleet, tmp_path):
    path = tmp_path / "gw" / "gateway.toml"
    path.parent.mkdir()
    path.write_text(f'[gateway]\nid = "gw-new"\nsite = "TP-118"\ndatabase = "gateway.sqlite3"\n'
                    f'[cloud]\nurl = "http://127.0.0.1:{fleet["port"]}"\n', encoding="utf-8")
    config = load_config(path)
    assert "from the cloud" in pin_release_root(config)
    pinned = release_root_path(config)
    served = urllib.request.urlopen(f"http://127.0.0.1:{fleet['port']}/api/v1/updates/metadata/1.root.json",
                                    timeout=10).read()
    assert pinned.read_bytes() == served and json.loads(served)["signed"]["_type"] == "root"
    assert "already pinned" in pin_release_root(config), "a pinned root is never replaced by the cloud's"
    pinned.unlink()
    given = tmp_path / "root.json"
    given.write_bytes(served)
    assert "pinned from" in pin_release_root(config, given) and pinned.read_bytes() == served
    pinned.unlink()
    given.write_text("{}", encoding="utf-8")
    with pytest.raises(EnrolmentFailed, match="not a TUF root"):
        pin_release_root(config, given)
    assert not pinned.exists()


def test_an_organisations_admin_sees_no_other_organisations_gateway_in_the_rollout(fleet, db):
    with db() as session:
        other = create_organisation(session, "Кооператив «Сусіди»", "cooperative", actor="test")
        site = create_site(session, other, "TP-900", "ТП сусідів", actor="test")
        session.add(Gateway(org_id=other.id, site_id=site.id, code="gw-neighbours", public_key="-"))
        org = session.get(Organisation, fleet["org_id"])
        create_user(session, "admin@coop.ua", PASSWORD, "org_admin", org)
        create_user(session, "operator@balans.ua", PASSWORD, "operator", org)
    rolled = fleet["runner"].invoke(args=["release", "rollout", "0.2.0", "--gateways", f"gw-neighbours,{CODES[0]}"])
    assert rolled.exit_code == 0, rolled.output
    request = urllib.request.Request(f"http://127.0.0.1:{fleet['port']}/api/v1/updates/status",
                                     headers=bearer(db, fleet["org_id"]))
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read().decode()
    assert json.loads(body)["rollout"]["gateways"] == [CODES[0]] and "gw-neighbours" not in body
    page = signed_in(fleet, "admin@coop.ua").open(f"http://127.0.0.1:{fleet['port']}/admin/updates", timeout=10)
    assert "gw-neighbours" not in page.read().decode()
    page = signed_in(fleet, "operator@balans.ua").open(f"http://127.0.0.1:{fleet['port']}/admin/updates", timeout=10)
    html = page.read().decode()
    assert "gw-neighbours" in html and 'id="gw-gw-neighbours"' in html  # the operator sees the whole fleet


def test_a_rollout_form_with_a_strange_percent_or_too_many_gateways_is_refused_clearly(fleet, db):
    with db() as session:
        create_user(session, "operator@balans.ua", PASSWORD, "operator", session.get(Organisation, fleet["org_id"]))
    operator = signed_in(fleet, "operator@balans.ua")
    url = f"http://127.0.0.1:{fleet['port']}/admin/updates/rollout"

    def submit(percent: str, gateways: str = "") -> str:
        form = urllib.parse.urlencode({"version": "0.2.0", "percent": percent, "gateways": gateways}).encode()
        answer = operator.open(url, data=form, timeout=10)
        assert answer.status == 200 and answer.url.endswith("/admin/updates")
        return answer.read().decode()

    for percent in ("²", "١٠", "101", "1000", "", "-5", "5.5"):  # a superscript two, Arabic-Indic ten …
        assert "Частка має бути цілим числом від 0 до 100." in submit(percent), percent
    many = ",".join(f"gw-{n}" for n in range(1001))
    for gateways in (many, "g" * 61):
        assert "Не більше 1000 шлюзів, кожен код до 60 символів" in submit("5", gateways)
    with db() as session:
        assert session.scalar(select(SoftwareRollout)) is None
    assert "Частка має бути цілим числом" not in submit("10")
    with db() as session:
        assert session.scalar(select(SoftwareRollout)).percent == 10


def test_a_reason_the_gateway_reports_never_gets_its_heartbeats_refused(fleet, db, tmp_path):
    """The gateway's pointer strips control characters from whatever it reports (a pip error, a proxy's text):
    the heartbeat that carries it passes the cloud's request guard, and the outcome is stored."""
    slots = Slots(tmp_path / "gw-updates")
    last = slots.refuse("0.2.0", "ab" * 32, "pip: \x1b[31mERROR\x1b[0m: bad wheel\r\n\x00" + "x" * 900)
    beat(fleet, CODES[2], 1, update={"slot": "base", "version": "0.1.0", "trial": None, "last": last})  # 200
    with db() as session:
        row = session.scalar(select(GatewayUpdate).where(GatewayUpdate.status == "refused"))
        assert row.reason.startswith("pip:  [31mERROR [0m: bad wheel") and len(row.reason) == 300
