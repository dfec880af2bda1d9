"""``balans cloud release init-keys | publish | rollout | status | root``: the operator's side of gateway software
updates (docs/updates.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from cloud.cli.lookup import app as _app
from cloud.cli.lookup import performs
from cloud.db import session_scope
from cloud.models import SoftwareRelease
from cloud.permissions import Action
from cloud.updates.repository import ReleaseError, channel_for, init_keys, publish, root_json
from cloud.updates.rollout import record_release, start_rollout, status


def _channel():
    app = _app()
    return channel_for(app.config, app.instance_path)


def _refused(exc: ReleaseError) -> click.ClickException:
    return click.ClickException(f"{exc.field}: {exc.message}" if exc.field else exc.message)


@click.group("release")
def release_group():
    """The signed release channel of the gateway software and its staged rollout (docs/updates.md)."""


@performs(Action.MANAGE_RELEASES)
@release_group.command("init-keys")
@click.option("--offline-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="where root.pem and targets.pem are written: removable media kept offline")
@with_appcontext
def init_keys_command(offline_dir):
    """Make the release keys and the channel's first metadata.

    The root and targets keys go to --offline-dir (keep them off the server); snapshot and timestamp stay in the
    cloud's updates/keys.  Example: balans cloud release init-keys --offline-dir /media/usb/balans-release
    """
    try:
        keys = init_keys(_channel(), offline_dir)
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
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def publish_command(wheel, version, targets_key, as_json):
    """Publish a gateway software wheel to the release channel (offered to nobody until a rollout).

    Example: balans cloud release publish dist/balans-0.2.0-py3-none-any.whl --version 0.2.0
    --targets-key /media/usb/balans-release/targets.pem
    """
    with session_scope(_app()) as db:
        if db.scalar(select(SoftwareRelease).where(SoftwareRelease.version == version)) is not None:
            raise click.ClickException(f"version: {version} is already published; publish a new version")
    try:
        target = publish(_channel(), wheel, version, targets_key)
    except ReleaseError as exc:
        raise _refused(exc) from exc
    with session_scope(_app()) as db:
        record_release(db, version, target.path, target.hashes["sha256"], target.length, "cli")
    document = {"version": version, "target": target.path, "sha256": target.hashes["sha256"],
                "length": target.length}
    click.echo(json.dumps(document, indent=2) if as_json else f"published {version} as {target.path}")


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
            start_rollout(db, version, percent, codes, "cli")
    except ReleaseError as exc:
        raise _refused(exc) from exc
    click.echo(f"{version} offered to {percent} % of the gateways" + (f" and to {', '.join(codes)}" if codes else ""))


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
    rollout = state["rollout"]
    click.echo(f"rollout: {rollout['version']} to {rollout['percent']} %" + (
        f" and {', '.join(rollout['gateways'])}" if rollout["gateways"] else "") if rollout else "rollout: none")
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
