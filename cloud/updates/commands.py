"""``balans cloud release init-keys | sign | upload | publish | withdraw | resign | rollout | reoffer | status |
root``: the operator's side of gateway software updates (docs/updates.md).

``sign``, and ``withdraw`` / ``resign`` with ``--out``, run on the offline machine that holds the root and targets
keys: no database, no server, files in and out. ``upload`` puts what they signed in force on the cloud.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import ScriptInfo, with_appcontext
from sqlalchemy import select

from cloud.audit import audit
from cloud.cli.lookup import app as _app
from cloud.cli.lookup import performs
from cloud.db import session_scope
from cloud.models import SoftwareRelease
from cloud.permissions import Action
from cloud.updates.repository import (
    ReleaseError,
    channel_for,
    init_keys,
    publish,
    resign,
    root_json,
    upload,
    withdraw,
)
from cloud.updates.rollout import held_back, record_release, reoffer, start_rollout, status
from cloud.updates.signing import (
    PASSPHRASE_VARIABLE,
    Change,
    entry_version,
    key_is_encrypted,
    load_signer,
    read_metadata,
    sign_release,
    sign_renewal,
    sign_withdrawal,
)


def _channel():
    app = _app()
    return channel_for(app.config, app.instance_path)


def _refused(exc: ReleaseError) -> click.ClickException:
    return click.ClickException(f"{exc.field}: {exc.message}" if exc.field else exc.message)


def _passphrase(given: Path | None, confirm: bool = False) -> bytes:
    """The offline keys' passphrase: from --passphrase-file, else BALANS_RELEASE_PASSPHRASE, else asked."""
    if given is not None:
        text = given.read_bytes().rstrip(b"\r\n")
        where = str(given)
    elif os.environ.get(PASSPHRASE_VARIABLE):
        text, where = os.environ[PASSPHRASE_VARIABLE].encode(), PASSPHRASE_VARIABLE
    else:
        text = click.prompt("passphrase of the offline release keys", hide_input=True,
                            confirmation_prompt=confirm, err=True).encode()
        where = "the prompt"
    if not text:
        raise click.ClickException(f"passphrase: {where} gives an empty passphrase")
    return text


def _key_passphrase(key: Path, given: Path | None) -> bytes | None:
    """A passphrase only for an encrypted key (a plain one, of a one-machine test setup, needs none)."""
    return _passphrase(given) if key_is_encrypted(key) else None


def _offline_key(offline_dir: Path, role: str) -> Path:
    key = Path(offline_dir) / f"{role}.pem"
    if not key.is_file():
        raise click.ClickException(f"offline-dir: {offline_dir} holds no {role}.pem (made by release init-keys)")
    return key


def _write_signed(metadata, out: Path) -> None:
    if out.exists():
        raise click.ClickException(f"out: {out} exists; signed metadata is never written over (give a new name)")
    metadata.to_file(str(out))


@contextlib.contextmanager
def _app_context():
    """The app, for the commands that need it only when they do not just sign offline."""
    if current_app:
        yield
        return
    with click.get_current_context().ensure_object(ScriptInfo).load_app().app_context():
        yield


def _audit_change(change: Change, signed_by: str) -> None:
    """The database's side of a change to the signed targets: a release recorded, a withdrawal or renewal
    audited (what is withdrawn is read from the signed file itself: cloud/updates/rollout.py)."""
    targets = read_metadata(_channel().metadata / "targets.json", "targets").signed
    with session_scope(_app()) as db:
        if change.added:
            entry = targets.targets[change.added]
            record_release(db, entry_version(entry), entry.path, entry.hashes["sha256"], entry.length, "cli")
        for version in change.withdrawn:
            audit(db, None, "cli", "release.withdraw", f"release:{version}", {"withdrawn": False},
                  {"version": version, "withdrawn": True, "signed": signed_by, "targets": targets.version})
        if change.role == "root" or not (change.added or change.withdrawn):
            role = read_metadata(_channel().metadata / "root.json", "root").signed if change.role == "root" \
                else targets
            audit(db, None, "cli", "release.resign", f"release:{change.role}", None,
                  {"role": change.role, "version": role.version, "expires": role.expires.isoformat(),
                   "signed": signed_by})


def _offline_dir_option(command):
    return click.option("--offline-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                        help="the offline medium with root.pem and targets.pem (from init-keys)")(command)


def _passphrase_option(command):
    return click.option("--passphrase-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        help=f"a file holding the keys' passphrase (else {PASSPHRASE_VARIABLE}, else asked)")(
        command)


def _offline_options(command):
    """--metadata and --out: sign on the offline machine and write the result, for release upload."""
    command = click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
                           help="write the signed metadata here (offline), instead of into this cloud's channel")(
        command)
    return click.option("--metadata", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        help="the channel's current metadata, downloaded from /api/v1/updates/metadata/ "
                        "(with --out)")(command)


@click.group("release")
def release_group():
    """The signed release channel of the gateway software and its staged rollout (docs/updates.md)."""


@performs(Action.MANAGE_RELEASES)
@release_group.command("init-keys")
@click.option("--offline-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="where root.pem and targets.pem are written: removable media kept offline")
@_passphrase_option
@with_appcontext
def init_keys_command(offline_dir, passphrase_file):
    """Make the release keys and the channel's first metadata.

    The root and targets keys go to --offline-dir, encrypted with a passphrase (keep them off the server);
    snapshot and timestamp stay in the cloud's updates/keys.
    Example: balans cloud release init-keys --offline-dir /media/usb/balans-release
    """
    passphrase = _passphrase(passphrase_file, confirm=True)
    try:
        keys = init_keys(_channel(), offline_dir, passphrase)
    except ReleaseError as exc:
        raise _refused(exc) from exc
    for role, keyid in keys.items():
        click.echo(f"{role:<9} {keyid}")
    click.echo(f"root and targets keys in {offline_dir}: take them off this machine", err=True)


@performs(Action.MANAGE_RELEASES)
@release_group.command("publish")
@click.argument("wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", required=True, help="the wheel's version, e.g. 0.2.0")
@click.option("--targets-key", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the offline targets key (targets.pem from init-keys)")
@_passphrase_option
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def publish_command(wheel, version, targets_key, passphrase_file, as_json):
    """Publish a gateway software wheel to the release channel, signing it here (one machine; the offline way is
    release sign, then release upload). Offered to nobody until a rollout.

    Example: balans cloud release publish dist/balans-0.2.0-py3-none-any.whl --version 0.2.0
    --targets-key /media/usb/balans-release/targets.pem
    """
    with session_scope(_app()) as db:
        if db.scalar(select(SoftwareRelease).where(SoftwareRelease.version == version)) is not None:
            raise click.ClickException(f"version: {version} is already published; publish a new version")
    try:
        target = publish(_channel(), wheel, version, targets_key, _key_passphrase(targets_key, passphrase_file))
    except ReleaseError as exc:
        raise _refused(exc) from exc
    with session_scope(_app()) as db:
        record_release(db, version, target.path, target.hashes["sha256"], target.length, "cli")
    document = {"version": version, "target": target.path, "sha256": target.hashes["sha256"],
                "length": target.length}
    click.echo(json.dumps(document, indent=2) if as_json else f"published {version} as {target.path}")


@performs(Action.MANAGE_RELEASES)
@release_group.command("sign")
@click.argument("wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", required=True, help="the wheel's version, e.g. 0.2.0")
@_offline_dir_option
@click.option("--metadata", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the channel's current targets.json (GET /api/v1/updates/metadata/targets.json)")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="where the new signed targets metadata is written")
@_passphrase_option
def sign_command(wheel, version, offline_dir, metadata, out, passphrase_file):
    """On the offline machine: sign the channel's next targets metadata, adding WHEEL as VERSION. No database, no
    server; carry the wheel and the output to the cloud and run release upload there.

    Example: balans cloud release sign balans-0.2.0-py3-none-any.whl --version 0.2.0 --offline-dir
    /media/usb/balans-release --metadata targets.json --out signed-targets.json
    """
    key = _offline_key(offline_dir, "targets")
    try:
        signer = load_signer(key, _key_passphrase(key, passphrase_file))
        signed = sign_release(read_metadata(metadata, "targets"), signer, wheel, version, str(metadata))
    except ReleaseError as exc:
        raise _refused(exc) from exc
    _write_signed(signed, out)
    click.echo(f"{out}: targets version {signed.signed.version} adds {Path(wheel).name}; on the cloud: "
               f"balans cloud release upload {Path(wheel).name} --signed {out.name}")


@performs(Action.MANAGE_RELEASES)
@release_group.command("upload")
@click.argument("wheel", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--signed", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the metadata signed offline (release sign, or withdraw / resign with --out)")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def upload_command(wheel, signed, as_json):
    """On the cloud: put in force targets (or root) metadata signed offline, after checking that the channel's
    root keys signed it and that it adds exactly WHEEL (its length and SHA-256) — or, without a wheel, only
    withdraws releases or renews the expiry. Snapshot and timestamp are re-signed with the online keys.

    Example: balans cloud release upload balans-0.2.0-py3-none-any.whl --signed signed-targets.json
    """
    if wheel is not None:
        with session_scope(_app()) as db:
            if db.scalar(select(SoftwareRelease).where(SoftwareRelease.target == wheel.name)) is not None:
                raise click.ClickException(f"wheel: {wheel.name} is already published; publish a new version")
    try:
        change = upload(_channel(), signed, wheel)
    except ReleaseError as exc:
        raise _refused(exc) from exc
    _audit_change(change, str(signed))
    document = {"role": change.role, "added": change.added, "withdrawn": change.withdrawn}
    click.echo(json.dumps(document, indent=2) if as_json else f"{signed}: {change.describe()}")


@performs(Action.MANAGE_RELEASES)
@release_group.command("withdraw")
@click.argument("version")
@_offline_dir_option
@_offline_options
@_passphrase_option
def withdraw_command(version, offline_dir, metadata, out, passphrase_file):
    """Withdraw VERSION in the signed targets: no gateway installs it, a gateway running it may go back to an older
    version, and the cloud offers it to nobody. With --metadata and --out: signed on the offline machine, put in
    force with release upload --signed; without: signed and put in force here (one machine).

    Example: balans cloud release withdraw 0.2.0 --offline-dir /media/usb/balans-release --metadata targets.json
    --out withdraw-0.2.0.json
    """
    key = _offline_key(offline_dir, "targets")
    try:
        signer_passphrase = _key_passphrase(key, passphrase_file)
        if out is not None or metadata is not None:
            if out is None or metadata is None:
                raise click.ClickException("metadata: signing offline takes both --metadata and --out")
            signed = sign_withdrawal(read_metadata(metadata, "targets"), load_signer(key, signer_passphrase),
                                     version, str(metadata))
            _write_signed(signed, out)
            click.echo(f"{out}: targets version {signed.signed.version} withdraws {version}; on the cloud: "
                       f"balans cloud release upload --signed {out.name}")
            return
        with _app_context():
            change = withdraw(_channel(), version, key, signer_passphrase)
            _audit_change(change, str(key))
    except ReleaseError as exc:
        raise _refused(exc) from exc
    click.echo(f"{version} withdrawn: offered to nobody, installed by no gateway")


@performs(Action.MANAGE_RELEASES)
@release_group.command("resign")
@_offline_dir_option
@click.option("--root", "role", flag_value="root", default="targets",
              help="renew the root (two years, root.pem) instead of targets (a year, targets.pem)")
@_offline_options
@_passphrase_option
def resign_command(offline_dir, role, metadata, out, passphrase_file):
    """Renew the expiry of the signed targets (a year) or, with --root, of the root (two years), with the offline
    key. With --metadata and --out: signed on the offline machine, put in force with release upload --signed;
    without: here (one machine). The cloud renews snapshot and timestamp by itself.

    Example: balans cloud release resign --offline-dir /media/usb/balans-release --metadata targets.json
    --out resigned-targets.json
    """
    key = _offline_key(offline_dir, role)
    try:
        passphrase = _key_passphrase(key, passphrase_file)
        if out is not None or metadata is not None:
            if out is None or metadata is None:
                raise click.ClickException("metadata: signing offline takes both --metadata and --out")
            signed = sign_renewal(read_metadata(metadata, role), load_signer(key, passphrase), role, str(metadata))
            _write_signed(signed, out)
            click.echo(f"{out}: {role} version {signed.signed.version} expires {signed.signed.expires:%Y-%m-%d}; "
                       f"on the cloud: balans cloud release upload --signed {out.name}")
            return
        with _app_context():
            change = resign(_channel(), key, role, passphrase)
            _audit_change(change, str(key))
            renewed = read_metadata(_channel().metadata / f"{role}.json", role).signed
    except ReleaseError as exc:
        raise _refused(exc) from exc
    click.echo(f"{role} version {renewed.version} expires {renewed.expires:%Y-%m-%d}")


@performs(Action.MANAGE_RELEASES)
@release_group.command("reoffer")
@click.argument("version")
@click.option("--gateways", required=True, help="the gateways that rolled VERSION back, comma-separated")
@with_appcontext
def reoffer_command(version, gateways):
    """Offer VERSION again to gateways that rolled it back (the cause fixed on site): their next offer says
    again=true and they forget their own refusal of it.

    Example: balans cloud release reoffer 0.2.0 --gateways gw-tp118
    """
    codes = [code.strip() for code in gateways.split(",") if code.strip()]
    try:
        with session_scope(_app()) as db:
            reoffer(db, version, codes, "cli")
    except ReleaseError as exc:
        raise _refused(exc) from exc
    click.echo(f"{version} offered again to {', '.join(codes)} (when the rollout in force offers it to them)")


@performs(Action.MANAGE_RELEASES)
@release_group.command("rollout")
@click.argument("version")
@click.option("--percent", default=0, show_default=True, type=click.IntRange(0, 100),
              help="the share of gateways offered the version (the same gateways first, as it grows)")
@click.option("--gateways", default="", help="gateway codes offered it whatever the percent, comma-separated")
@with_appcontext
def rollout_command(version, percent, gateways):
    """Offer a published version to a share of the gateways and/or to named ones.

    Example: balans cloud release rollout 0.2.0 --gateways gw-tp118 ; then --percent 10, then --percent 100
    """
    codes = [code.strip() for code in gateways.split(",") if code.strip()]
    try:
        with session_scope(_app()) as db:
            held = held_back(db, start_rollout(db, version, percent, codes, "cli"))
    except ReleaseError as exc:
        raise _refused(exc) from exc
    click.echo(f"{version} offered to {percent} % of the gateways" + (f" and to {', '.join(codes)}" if codes else ""))
    if held:
        click.echo(f"warning: {len(held)} of them run a newer version that is not withdrawn and will not move back "
                   f"to {version} ({', '.join(held[:10])}{' …' if len(held) > 10 else ''}): withdraw it first "
                   "(balans cloud release withdraw …)", err=True)


@performs(Action.MANAGE_RELEASES)
@release_group.command("status")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def status_command(as_json):
    """Releases, the rollout in force, and what each gateway runs and reported.  Example: balans cloud release status"""
    with session_scope(_app()) as db:
        state = status(db)
    if as_json:
        click.echo(json.dumps(state, ensure_ascii=False, indent=2))
        return
    for row in state["expiry"]:
        if row["soon"]:
            click.echo(f"warning: the signed {row['role']} expires {row['expires']} (in {row['days']} days): run "
                       f"{row['command']}")
    click.echo("releases: " + (", ".join(r["version"] + (" (withdrawn)" if r["withdrawn"] else "")
                                         for r in state["releases"]) or "none"))
    rollout = state["rollout"]
    click.echo(f"rollout: {rollout['version']} to {rollout['percent']} %" + (
        f" and {', '.join(rollout['gateways'])}" if rollout["gateways"] else "") + (
        " — withdrawn, offered to nobody" if rollout["withdrawn"] else "") if rollout else "rollout: none")
    for row in state["gateways"]:
        last = row["last"]
        outcome = f"{last['version']} {last['status']} {last['reason']}".strip() if last else "-"
        click.echo(f"{row['gateway']:<20} runs {row['running'] or '-':<10} slot {row['slot'] or '-'} "
                   f"should run {row['target'] or '-':<10} last update: {outcome}")


@performs(Action.MANAGE_RELEASES)
@release_group.command("root")
@with_appcontext
def root_command():
    """Print the channel's first root metadata: put it on a gateway as <state>/updates/root.json.

    Example: balans cloud release root > root.json
    """
    try:
        sys.stdout.buffer.write(root_json(_channel()))
    except ReleaseError as exc:
        raise _refused(exc) from exc


GROUPS = [release_group]
