"""Signing offline (docs/updates.md): the root and targets keys encrypted on the operator's medium, a release
signed on a machine with no database and no server, carried to the cloud and put in force only when the
channel's keys signed it and it adds exactly the wheel brought with it; withdrawal and renewal the same way, and
a gateway's TUF client (tuf.ngclient, over a real port) accepting what came out."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cloud.accounts.organisations import create_user
from cloud.models import AuditLog, Organisation, SoftwareRelease
from cloud.updates.commands import release_group
from cloud.updates.repository import ReleaseError, channel_for, init_keys, load_signer
from cloud.updates.signing import now, read_metadata, sign_release, sign_renewal
from edge.update import UpdateFailed, fetch_release
from tests.cloud.test_updates import CODES, PASSPHRASE, PASSWORD, beat, fleet, signed_in  # noqa: F401 — fleet: a fixture
from tests.edge.release_wheels import release_wheel

pytestmark = pytest.mark.timeout(90)


def download(fleet, name: str, into: Path) -> Path:  # noqa: F811 — the fixture's value
    """What the operator carries to the offline machine: the channel's current metadata, as any client gets it."""
    into.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(f"http://127.0.0.1:{fleet['port']}/api/v1/updates/metadata/{name}",
                                timeout=10) as response:
        (into / name).write_bytes(response.read())
    return into / name


def offline(*args: str, passphrase: str = PASSPHRASE):
    """A command on the offline machine: the release group alone, no app, no database."""
    return CliRunner().invoke(release_group, list(args), env={"BALANS_RELEASE_PASSPHRASE": passphrase})


def gateway_fetch(fleet, target: str, version: str, name: str = "gw"):  # noqa: F811
    """A gateway's TUF client, starting from the channel's first root, fetching ``target`` over the real port."""
    updates = fleet["tmp"] / name / "updates"
    updates.mkdir(parents=True, exist_ok=True)
    (updates / "root.json").write_bytes(download(fleet, "1.root.json", fleet["tmp"] / name).read_bytes())
    return fetch_release(updates, f"http://127.0.0.1:{fleet['port']}", target, version)


def test_the_offline_keys_are_encrypted_and_open_only_with_their_passphrase(fleet):  # noqa: F811
    for role in ("root", "targets"):
        key = fleet["offline"] / f"{role}.pem"
        assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes() and key.stat().st_mode & 0o077 == 0
        with pytest.raises(ReleaseError, match="is encrypted: give its passphrase"):
            load_signer(key)
        with pytest.raises(ReleaseError, match="the passphrase does not open"):
            load_signer(key, b"not the passphrase")
        assert load_signer(key, PASSPHRASE.encode()).public_key.keyid
    keys = fleet["tmp"] / "updates" / "keys"
    assert sorted(p.name for p in keys.glob("*.pem")) == ["snapshot.pem", "timestamp.pem"]  # online stay online
    wrong = offline("sign", str(release_wheel(fleet["tmp"], "0.3.0")), "--version", "0.3.0", "--offline-dir",
                    str(fleet["offline"]), "--metadata", str(download(fleet, "targets.json", fleet["tmp"] / "usb")),
                    "--out", str(fleet["tmp"] / "usb" / "signed.json"), passphrase="guess")
    assert wrong.exit_code != 0 and "passphrase: the passphrase does not open" in wrong.output
    assert not (fleet["tmp"] / "usb" / "signed.json").exists()


def test_a_release_signed_offline_is_uploaded_and_a_gateway_verifies_it(fleet, db):  # noqa: F811
    usb, tmp = fleet["tmp"] / "usb", fleet["tmp"]
    wheel = release_wheel(tmp, "0.3.0")
    current = download(fleet, "targets.json", usb)
    signed = offline("sign", str(wheel), "--version", "0.3.0", "--offline-dir", str(fleet["offline"]),
                     "--metadata", str(current), "--out", str(usb / "signed-targets.json"))
    assert signed.exit_code == 0, signed.output
    assert "upload balans-0.3.0-py3-none-any.whl --signed signed-targets.json" in signed.output
    document = json.loads((usb / "signed-targets.json").read_text())
    assert document["signed"]["version"] == json.loads(current.read_text())["signed"]["version"] + 1
    entry = document["signed"]["targets"]["balans-0.3.0-py3-none-any.whl"]
    assert entry["custom"]["balans"] == {"version": "0.3.0"} and entry["length"] == wheel.stat().st_size
    uploaded = fleet["runner"].invoke(args=["release", "upload", str(wheel), "--signed",
                                            str(usb / "signed-targets.json"), "--json"])
    assert uploaded.exit_code == 0, uploaded.output
    assert json.loads(uploaded.output) == {"role": "targets", "added": "balans-0.3.0-py3-none-any.whl",
                                           "withdrawn": []}
    with db() as session:
        row = session.scalar(select(SoftwareRelease).where(SoftwareRelease.version == "0.3.0"))
        assert (row.target, row.length) == ("balans-0.3.0-py3-none-any.whl", wheel.stat().st_size)
        assert session.scalar(select(AuditLog).where(AuditLog.action == "release.publish",
                                                     AuditLog.entity == "release:0.3.0")) is not None
    release = gateway_fetch(fleet, "balans-0.3.0-py3-none-any.whl", "0.3.0")
    assert release.path.read_bytes() == wheel.read_bytes()
    again = fleet["runner"].invoke(args=["release", "upload", str(wheel), "--signed",
                                         str(usb / "signed-targets.json")])
    assert again.exit_code != 0 and "already published" in again.output


def test_an_upload_that_is_not_exactly_the_signed_wheel_is_refused_saying_why(fleet, app, tmp_path):  # noqa: F811
    usb, tmp, runner = fleet["tmp"] / "usb", fleet["tmp"], fleet["runner"]
    current = download(fleet, "targets.json", usb)
    wheel = release_wheel(tmp, "0.3.0")
    assert offline("sign", str(wheel), "--version", "0.3.0", "--offline-dir", str(fleet["offline"]),
                   "--metadata", str(current), "--out", str(usb / "signed.json")).exit_code == 0
    other = tmp_path / "elsewhere"
    other.mkdir()
    tampered = release_wheel(other, "0.3.0", {"balans/evil.py": "import os\n"})  # same name, other bytes
    # Another channel's keys: a thief's "release" signed with a targets key this channel's root does not list.
    init_keys(channel_for({"UPDATES_DIR": str(tmp_path / "stranger")}, ""), tmp_path / "theirs", b"their passphrase")
    forged = sign_release(read_metadata(current, "targets"), load_signer(fleet["offline"] / "targets.pem",
                                                                        PASSPHRASE.encode()),
                          wheel, "0.3.0")
    forged.signatures.clear()
    forged.sign(load_signer(tmp_path / "theirs" / "targets.pem", b"their passphrase"))
    forged.to_file(str(usb / "forged.json"))
    signer = load_signer(fleet["offline"] / "targets.pem", PASSPHRASE.encode())
    two = sign_release(read_metadata(usb / "signed.json", "targets"), signer,
                       release_wheel(tmp, "0.3.1"), "0.3.1")
    two.signed.version -= 1  # 0.3.0 and 0.3.1 in one version after the channel's
    two.signatures.clear()
    two.sign(signer)
    two.to_file(str(usb / "two.json"))
    stale = sign_renewal(read_metadata(current, "targets"), signer, "targets", when=now() - timedelta(days=400))
    stale.to_file(str(usb / "expired.json"))
    for args, says in (
            ([str(tampered), "--signed", str(usb / "signed.json")], "the file given is"),
            ([str(wheel), "--signed", str(usb / "forged.json")], "is not signed by the channel's targets key"),
            ([str(wheel), "--signed", str(usb / "two.json")], "it must add exactly balans-0.3.0-py3-none-any.whl"),
            ([str(release_wheel(tmp, "0.3.1")), "--signed", str(usb / "signed.json")],
             "it must add exactly balans-0.3.1"),
            (["--signed", str(usb / "signed.json")], "upload it with its wheel"),
            (["--signed", str(usb / "expired.json")], "expired at"),
            (["--signed", str(tmp / "updates" / "repository" / "metadata" / "snapshot.json")],
             "holds snapshot metadata, not targets")):
        result = runner.invoke(args=["release", "upload", *args])
        assert result.exit_code != 0 and says in result.output, (args, result.output)
    served = json.loads(download(fleet, "targets.json", tmp / "after").read_text())
    assert served == json.loads(current.read_text()), "nothing refused changed the channel"
    assert not (tmp / "updates" / "repository" / "targets" / "balans-0.3.0-py3-none-any.whl").exists()
    # Signed from a copy of targets.json that is no longer the channel's: the next version is taken.
    assert runner.invoke(args=["release", "upload", str(wheel), "--signed", str(usb / "signed.json")]).exit_code == 0
    late = release_wheel(tmp, "0.4.0")
    assert offline("sign", str(late), "--version", "0.4.0", "--offline-dir", str(fleet["offline"]), "--metadata",
                   str(current), "--out", str(usb / "late.json")).exit_code == 0
    result = runner.invoke(args=["release", "upload", str(late), "--signed", str(usb / "late.json")])
    assert result.exit_code != 0 and "sign it again from the channel's current targets.json" in result.output
    # A copy altered on its way to the offline machine is not signed over.
    altered = json.loads(current.read_text())
    altered["signed"]["targets"]["balans-0.2.0-py3-none-any.whl"]["length"] += 1
    (usb / "altered.json").write_text(json.dumps(altered))
    result = offline("sign", str(late), "--version", "0.4.0", "--offline-dir", str(fleet["offline"]),
                     "--metadata", str(usb / "altered.json"), "--out", str(usb / "never.json"))
    assert result.exit_code != 0 and "is not signed by this targets key" in result.output


def test_a_withdrawn_version_is_offered_to_nobody_and_shown_withdrawn(fleet, db):  # noqa: F811
    runner, usb = fleet["runner"], fleet["tmp"] / "usb"
    assert runner.invoke(args=["release", "rollout", "0.2.0", "--percent", "100"]).exit_code == 0
    assert beat(fleet, CODES[0], 1)["update"]["version"] == "0.2.0"
    current = download(fleet, "targets.json", usb)
    signed = offline("withdraw", "0.2.0", "--offline-dir", str(fleet["offline"]), "--metadata", str(current),
                     "--out", str(usb / "withdraw.json"))
    assert signed.exit_code == 0, signed.output
    assert beat(fleet, CODES[0], 2)["update"]["version"] == "0.2.0", "signed offline is not yet in force"
    uploaded = runner.invoke(args=["release", "upload", "--signed", str(usb / "withdraw.json")])
    assert uploaded.exit_code == 0 and "withdraws 0.2.0" in uploaded.output, uploaded.output
    served = json.loads(download(fleet, "targets.json", fleet["tmp"] / "after").read_text())
    assert served["signed"]["targets"]["balans-0.2.0-py3-none-any.whl"]["custom"]["balans"] == {
        "version": "0.2.0", "withdrawn": True}
    assert beat(fleet, CODES[0], 3)["update"] is None  # the rollout in force stops offering it
    refused = runner.invoke(args=["release", "rollout", "0.2.0", "--percent", "50"])
    assert refused.exit_code != 0 and "0.2.0 is withdrawn in the signed targets" in refused.output
    state = runner.invoke(args=["release", "status"])
    assert "releases: 0.2.0 (withdrawn)" in state.output and "withdrawn, offered to nobody" in state.output
    as_json = json.loads(runner.invoke(args=["release", "status", "--json"]).output)
    assert as_json["releases"][0]["withdrawn"] is True and as_json["rollout"]["withdrawn"] is True
    assert all(row["target"] is None for row in as_json["gateways"])
    with db() as session:
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "release.withdraw"))
        assert entry.after["version"] == "0.2.0" and entry.entity == "release:0.2.0"
        create_operator(session, fleet)
    html = signed_in(fleet, "operator@balans.ua").open(f"http://127.0.0.1:{fleet['port']}/admin/updates",
                                                       timeout=10).read().decode()
    row = html[html.index('id="release-0.2.0"'):]
    assert "release_withdrawn" in row[:row.index("</tr>")] or "ідкликан" in row[:row.index("</tr>")]
    assert '<option value="0.2.0">' not in html  # not offered in the rollout form
    again = runner.invoke(args=["release", "withdraw", "0.2.0", "--offline-dir", str(fleet["offline"])])
    assert again.exit_code != 0 and "0.2.0 is withdrawn already" in again.output


def create_operator(session, fleet):  # noqa: F811
    create_user(session, "operator@balans.ua", PASSWORD, "operator", session.get(Organisation, fleet["org_id"]))


def test_withdrawing_on_one_machine_with_the_key_here_and_a_gateway_refuses_the_withdrawn_target(fleet):  # noqa: F811
    wheel = release_wheel(fleet["tmp"], "0.3.0")
    key = str(fleet["offline"] / "targets.pem")
    assert fleet["runner"].invoke(args=["release", "publish", str(wheel), "--version", "0.3.0",
                                        "--targets-key", key]).exit_code == 0
    done = fleet["runner"].invoke(args=["release", "withdraw", "0.3.0", "--offline-dir", str(fleet["offline"])])
    assert done.exit_code == 0 and "0.3.0 withdrawn" in done.output, done.output
    targets = json.loads(download(fleet, "targets.json", fleet["tmp"] / "after").read_text())["signed"]["targets"]
    assert targets["balans-0.3.0-py3-none-any.whl"]["custom"]["balans"] == {"version": "0.3.0", "withdrawn": True}
    assert "withdrawn" not in targets["balans-0.2.0-py3-none-any.whl"]["custom"]["balans"]
    # The channel still verifies end to end for a TUF client (the gateway's own rule on withdrawn is edge's).
    assert gateway_fetch(fleet, "balans-0.2.0-py3-none-any.whl", "0.2.0").path.is_file()


def test_expiry_is_warned_in_time_and_renewed_offline_or_here(fleet, db):  # noqa: F811
    runner, usb = fleet["runner"], fleet["tmp"] / "usb"
    metadata = fleet["tmp"] / "updates" / "repository" / "metadata"
    passphrase = PASSPHRASE.encode()
    targets_key = load_signer(fleet["offline"] / "targets.pem", passphrase)
    root_key = load_signer(fleet["offline"] / "root.pem", passphrase)
    # Signed long ago (as if): targets now expire in 25 days, root in 55.
    soon = sign_renewal(read_metadata(metadata / "targets.json", "targets"), targets_key, "targets",
                        when=now() - timedelta(days=340))
    usb.mkdir(parents=True, exist_ok=True)
    soon.to_file(str(usb / "soon-targets.json"))
    assert runner.invoke(args=["release", "upload", "--signed", str(usb / "soon-targets.json")]).exit_code == 0
    old_root = sign_renewal(read_metadata(metadata / "root.json", "root"), root_key, "root",
                            when=now() - timedelta(days=675))
    old_root.to_file(str(usb / "soon-root.json"))
    uploaded = runner.invoke(args=["release", "upload", "--signed", str(usb / "soon-root.json")])
    assert uploaded.exit_code == 0 and "renews root" in uploaded.output, uploaded.output
    assert (metadata / "2.root.json").is_file()
    state = runner.invoke(args=["release", "status"]).output
    assert re.search(r"warning: the signed targets expires \S+ \(in 2[45] days\)", state)
    assert "run balans cloud release resign --offline-dir DIR" in state
    assert "warning: the signed root expires" in state and "resign --root --offline-dir DIR" in state
    with db() as session:
        create_operator(session, fleet)
    html = signed_in(fleet, "operator@balans.ua").open(f"http://127.0.0.1:{fleet['port']}/admin/updates",
                                                       timeout=10).read().decode()
    assert 'id="expiry-targets"' in html and 'id="expiry-root"' in html
    # Targets renewed offline and uploaded; root renewed on one machine.
    current = download(fleet, "targets.json", usb / "now")
    renewed = offline("resign", "--offline-dir", str(fleet["offline"]), "--metadata", str(current), "--out",
                      str(usb / "renewed.json"))
    assert renewed.exit_code == 0, renewed.output
    done = runner.invoke(args=["release", "upload", "--signed", str(usb / "renewed.json")])
    assert done.exit_code == 0 and "renews targets" in done.output, done.output
    here = runner.invoke(args=["release", "resign", "--root", "--offline-dir", str(fleet["offline"])])
    assert here.exit_code == 0 and "root version 3 expires" in here.output, here.output
    state = json.loads(runner.invoke(args=["release", "status", "--json"]).output)
    assert not any(row["soon"] for row in state["expiry"]) and {r["role"] for r in state["expiry"]} == {
        "targets", "root"}
    with db() as session:
        assert [e.after["role"] for e in session.scalars(select(AuditLog).where(
            AuditLog.action == "release.resign").order_by(AuditLog.id))] == ["targets", "root", "targets", "root"]
    # A gateway that trusts the first root follows the renewed ones (2, 3) and verifies the package.
    assert gateway_fetch(fleet, "balans-0.2.0-py3-none-any.whl", "0.2.0").path.is_file()
    # A root that re-keys is not a renewal: refused.
    rekeyed = sign_renewal(read_metadata(metadata / "root.json", "root"), root_key, "root")
    rekeyed.signed.add_key(targets_key.public_key, "timestamp")
    rekeyed.signatures.clear()
    rekeyed.sign(root_key)
    rekeyed.to_file(str(usb / "rekeyed.json"))
    refused = runner.invoke(args=["release", "upload", "--signed", str(usb / "rekeyed.json")])
    assert refused.exit_code != 0 and "changes the root's roles" in refused.output
    with pytest.raises(UpdateFailed):
        gateway_fetch(fleet, "balans-9.9.9-py3-none-any.whl", "9.9.9", name="gw2")
