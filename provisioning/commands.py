"""``balans provision …``: the installer's tool — scan the buses, write the configuration, enrol the gateway
with the cloud, check the commissioning."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
from pathlib import Path

import click

from edge.commissioning import LANGUAGES, check_site
from edge.config import ConfigError, load_config
from edge.scan import parse_hosts, parse_units, scan
from provisioning.enrolment import EnrolmentFailed, enrol, pin_release_root, rotate_key
from provisioning.report import html_report, scan_table, terminal_report
from provisioning.site_config import (
    RegisterUnavailable,
    fetch_register,
    gateway_toml,
    lines_and_meters_toml,
    merge_register,
    propose,
)
from shared.iec62056_21 import sign_on
from shared.profiles import ProfileError, load_profiles


@click.group("provision")
def provision():
    """The installer's tool: bus scan, configuration, enrolment, commissioning check."""


@provision.command("enroll")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--token", required=True, help="one-time enrolment token from the org admin")
@click.option("--cloud", "cloud_url", default="", help="cloud URL (default: the one in the config)")
@click.option("--release-root", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the release channel's root from the operator (balans cloud release root); default: the cloud's")
def enroll(config_path, token, cloud_url, release_root):
    """Send this gateway's public key and site topology to the cloud (creates the key if missing), and pin the
    release channel's root its software updates are verified from (docs/updates.md).

    Example: balans provision enroll --config /etc/balans/gateway.toml --cloud https://balans.example --token T
    """
    try:
        config = load_config(Path(config_path))
        answer = enrol(config, token, cloud_url or None)
        click.echo(f"enrolled {answer['gateway']} at site {config.site}")
        click.echo(pin_release_root(config, release_root, cloud_url or None))
    except (ConfigError, EnrolmentFailed) as exc:
        raise click.ClickException(str(exc)) from exc


@provision.command("rotate-key")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
def rotate_key_cmd(config_path):
    """Give the gateway a new key, signed by the old one; the cloud keeps both for old batches.

    Example: balans provision rotate-key --config /etc/balans/gateway.toml
    """
    try:
        answer = rotate_key(load_config(Path(config_path)))
    except (ConfigError, EnrolmentFailed) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"key of {answer['gateway']} rotated")


@provision.command("scan")
@click.option("--serial", default="", help="RS-485 serial port to walk, e.g. /dev/ttyUSB0")
@click.option("--baud", default="9600", show_default=True, help="baud rates to try on the serial port, e.g. 9600,19200")
@click.option("--parity", default="N", show_default=True, type=click.Choice(["N", "E", "O"]))
@click.option("--units", default="1-32", show_default=True, help="unit ids to ask, e.g. 1-32 or 1,5,10-12")
@click.option("--tcp", "tcp", multiple=True, help="a subnet (192.168.1.0/28) or hosts (10.0.0.5,10.0.0.6) of Modbus TCP")
@click.option("--port", default=502, show_default=True, help="Modbus TCP port")
@click.option("--tcp-units", default="", help="unit ids to ask on each TCP host (default: --units)")
@click.option("--iec", default="", help="an IEC 62056-21 line or optical head, e.g. /dev/ttyUSB1 or socket://host:port")
@click.option("--iec-addresses", default="", help="the meters' addresses on a shared IEC line, e.g. 1001,1002 "
              "(default: the one meter on the head)")
@click.option("--iec-password", default="", help="the P1 password, for makers' profiles read in programming mode")
@click.option("--mbus", default="", help="an M-Bus line (level converter), e.g. /dev/ttyUSB2 or socket://host:port")
@click.option("--mbus-units", default="", help="M-Bus primary addresses to ask, e.g. 1-250 (default: --units)")
@click.option("--mbus-baud", default=2400, show_default=True, help="M-Bus baud rate")
@click.option("--dlms", default="", help="a DLMS/COSEM (HDLC) line, e.g. /dev/ttyUSB3 or socket://host:port")
@click.option("--dlms-units", default="", help="HDLC physical addresses to ask, e.g. 16-40 (default: --units)")
@click.option("--dlms-password", default="", help="the meters' low-level security password (default: none)")
@click.option("--timeout", default=0.3, show_default=True, help="seconds a silent Modbus unit may take")
@click.option("--budget", default=120.0, show_default=True, help="seconds for the whole scan")
@click.option("--profiles-dir", default="", type=click.Path(file_okay=False), help="your own meter profiles")
@click.option("--json", "as_json", is_flag=True, help="print the scan and its proposal as JSON")
@click.option("-o", "--output", default="", type=click.Path(dir_okay=False), help="also write the JSON to this file")
def scan_cmd(serial, baud, parity, units, tcp, port, tcp_units, iec, iec_addresses, iec_password, mbus, mbus_units,
             mbus_baud, dlms, dlms_units, dlms_password, timeout, budget, profiles_dir, as_json, output):
    """Find every answering meter (Modbus RTU and TCP, IEC 62056-21, M-Bus), name its profile and propose roles
    and lines.

    Example: balans provision scan --serial /dev/ttyUSB0 --baud 9600,19200 --units 1-32 --tcp 192.168.1.0/28
    --iec /dev/ttyUSB1 --mbus /dev/ttyUSB2 --mbus-units 1-20 -o scan.json
    """
    if not serial and not tcp and not iec and not mbus and not dlms:
        raise click.UsageError("give --serial /dev/ttyX, --tcp SUBNET-OR-HOSTS, --iec /dev/ttyY, --mbus /dev/ttyZ "
                               "or --dlms /dev/ttyW")
    try:
        unit_ids = parse_units(units)
        host_unit_ids = parse_units(tcp_units) if tcp_units else unit_ids
        mbus_ids = parse_units(mbus_units, 250, "--mbus-units") if mbus_units else unit_ids
        dlms_ids = parse_units(dlms_units, 16383, "--dlms-units") if dlms_units else unit_ids
        iec_list = [a.strip() for a in iec_addresses.split(",") if a.strip()] or [""]
        for address in iec_list:
            sign_on(address)  # an address the standard does not allow is named here, not taken for silence
        hosts = parse_hosts(tcp)
        bauds = [int(b) for b in baud.split(",") if b.strip()]
        profiles = load_profiles((Path(profiles_dir),) if profiles_dir else ())
    except ValueError as exc:  # ProfileError too
        raise click.BadParameter(str(exc)) from exc
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # a silent unit is expected, not an error
    counter = {"probed": 0}
    tty = sys.stderr.isatty()

    def progress(kind: str, text: str) -> None:
        if kind == "found":
            click.echo(("\r" if tty else "") + f"found {text}", err=True)
        else:
            counter["probed"] += 1
            if tty:
                click.echo(f"\r  probed {counter['probed']}/{planned}", nl=False, err=True)

    planned = (len(unit_ids) * len(bauds) * bool(serial) + len(hosts) * len(host_unit_ids)
               + len(iec_list) * bool(iec) + len(mbus_ids) * bool(mbus) + len(dlms_ids) * bool(dlms))
    result = asyncio.run(scan(profiles, serial=serial or None, bauds=bauds, parity=parity, hosts=hosts, port=port,
                              units=unit_ids, tcp_units=host_unit_ids, timeout=timeout, budget=budget,
                              progress=progress, iec=iec or None, iec_addresses=iec_list, iec_password=iec_password,
                              mbus=mbus or None, mbus_units=mbus_ids, mbus_baud=mbus_baud, dlms=dlms or None,
                              dlms_units=dlms_ids, dlms_password=dlms_password))
    if tty:
        click.echo("", err=True)
    document = result.as_json()
    proposal = propose(document)
    document["proposal"] = proposal.as_json()
    if output:
        Path(output).write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    click.echo(scan_table(document))
    click.echo("\n# Proposed [[line]] and [[meter]] sections (balans provision init writes the whole file):\n")
    click.echo(lines_and_meters_toml(proposal))
    for note in proposal.notes:
        click.echo(f"note: {note}")


@provision.command("init")
@click.option("--scan", "scan_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="the JSON of balans provision scan -o")
@click.option("--cloud", "cloud_url", default="http://127.0.0.1:8000", show_default=True, help="the cloud's URL")
@click.option("--token", default="", help="an API token that may view the register: match meters with it")
@click.option("--site", default="", help="the site's code (default: the register's, else \"site\")")
@click.option("--gateway-id", default="", help="this gateway's id (default: gw-<hostname>)")
@click.option("--poll-seconds", default=900, show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="the gateway.toml to write")
@click.option("--force", is_flag=True, help="overwrite an existing file")
def init_cmd(scan_path, cloud_url, token, site, gateway_id, poll_seconds, output, force):
    """Write the gateway's configuration from a scan, matched with the site's register in the cloud.

    Example: balans provision init --scan scan.json --cloud https://balans.example --token T -o /etc/balans/gateway.toml
    """
    target = Path(output)
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; give --force to overwrite it")
    try:
        document = json.loads(Path(scan_path).read_text(encoding="utf-8"))
        proposal = propose(document)
    except (ValueError, KeyError) as exc:
        raise click.ClickException(f"{scan_path}: not the JSON of balans provision scan ({exc})") from exc
    if token:
        try:
            proposal = merge_register(proposal, fetch_register(cloud_url, token, site or None))
        except RegisterUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
    site = site or proposal.site or "site"
    gateway_id = gateway_id or "gw-" + socket.gethostname().split(".")[0].lower()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(gateway_toml(proposal, gateway_id=gateway_id, site=site, cloud_url=cloud_url.rstrip("/"),
                                   poll_seconds=poll_seconds), encoding="utf-8")
    try:
        config = load_config(target)
    except ConfigError as exc:
        raise click.ClickException(f"the written configuration does not load: {exc}") from exc
    matched = sum(m.source != "proposed" for m in proposal.meters)
    click.echo(f"wrote {target}: {len(config.meters)} meters ({matched} matched in the register), "
               f"{len(config.lines)} lines, site {site}, gateway {gateway_id}")
    for note in proposal.notes:
        click.echo(f"note: {note}")


@provision.command("check")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--lang", default="uk", show_default=True, type=click.Choice(LANGUAGES))
@click.option("--html", "html_path", default="", type=click.Path(dir_okay=False), help="also write an HTML report")
@click.option("--json", "as_json", is_flag=True)
@click.option("--clock-offset", default=0.0, hidden=True, help="seconds added to the system clock (a rehearsal)")
def check_cmd(config_path, lang, html_path, as_json, clock_offset):
    """Commissioning check: meters read and plausible, clock, line balances, cloud link, first batch accepted.

    Exits 1 when an item fails; each failing item says what to do.
    Example: balans provision check --config /etc/balans/gateway.toml --lang en --html report.html
    """
    try:
        config = load_config(Path(config_path))
    except (ConfigError, ProfileError) as exc:
        raise click.ClickException(str(exc)) from exc
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    report = check_site(config, clock_offset)
    if html_path:
        Path(html_path).write_text(html_report(report, lang), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(report.as_json(lang), ensure_ascii=False, indent=2))
    else:
        click.echo(terminal_report(report, lang))
    sys.exit(0 if report.passed else 1)



