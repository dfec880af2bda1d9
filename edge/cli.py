"""``balans edge …`` and ``balans sim``: run the gateway, ask it for balances and status, simulate a station."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import date
from pathlib import Path

import click

from edge.clock import AcceleratedClock
from edge.config import ConfigError, load_config
from edge.energy_reports import gateway_balance, gateway_status, voltage_compliance
from edge.gateway import Gateway
from edge.logs import configure
from edge.simulator import SimulatedStation, serve_forever
from edge.store import StoreSchemaNewer, open_database
from shared.calendar import parse_iso
from shared.scenario import ScenarioError, load_scenario


def _config(path: str):
    try:
        return load_config(Path(path))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("edge")
def edge_group():
    """The gateway at a transformer station."""


@edge_group.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--log-level", default="INFO", show_default=True)
def run(config_path, log_level):
    """Poll the meters, balance, seal and forward batches until stopped (SIGTERM/Ctrl-C).

    Example: balans edge run --config /etc/balans/gateway.toml
    """
    configure(log_level)
    config = _config(config_path)

    async def main() -> None:
        gateway = Gateway(config)
        task = asyncio.create_task(gateway.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            click.echo("gateway stopped cleanly", err=True)

    try:
        asyncio.run(main())
    except StoreSchemaNewer as exc:  # said plainly, not as a traceback: the launcher falls back (docs/updates.md)
        raise click.ClickException(str(exc)) from exc


@edge_group.command("balance")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--period", required=True, help="YYYY-MM")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def balance(config_path, period, as_json):
    """The station's micro-balance for a Kyiv calendar month, from the gateway's own store (no cloud needed).

    Example: balans edge balance --config gateway.toml --period 2026-10 --json
    """
    config = _config(config_path)
    db = open_database(config.database)
    try:
        result = gateway_balance(db, config, period)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    document = {"period": period, **result.as_json()}
    if as_json:
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    station = document["station"]
    click.echo(f"{period}: input {station['input_kwh']} kWh, feeders {station['feeders_kwh']} kWh, "
               f"loss {station['loss_pct']} %")
    for line in document["lines"]:
        click.echo(f"  line {line['line']}: {line['feeder_kwh']} → {line['subscribers_kwh']} kWh, "
                   f"loss {line['loss_pct']} % ({line['status']})")


@edge_group.command("voltage")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--week", "week_start", required=True, help="first day of the week (Kyiv calendar), YYYY-MM-DD")
def voltage(config_path, week_start):
    """EN 50160 weekly voltage compliance per meter and phase, as JSON.

    Example: balans edge voltage --config gateway.toml --week 2026-10-05
    """
    try:
        week = date.fromisoformat(week_start)
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {week_start!r}", param_hint="--week") from exc
    config = _config(config_path)
    click.echo(json.dumps(voltage_compliance(open_database(config.database), config, week), ensure_ascii=False,
                          indent=2))


@edge_group.command("status")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def status(config_path, as_json):
    """Meters online/offline, backlog, last upload.  Example: balans edge status --config gateway.toml --json"""
    config = _config(config_path)
    document = gateway_status(open_database(config.database), config)
    if as_json:
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        meters = document["meters"]
        click.echo(f"gateway {document['gateway']} at {document['site']}: {meters['online']}/{meters['total']} "
                   f"meters online; {document['backlog']['pending_batches']} batches waiting; "
                   f"last upload {document['last_upload'] or 'never'}")
        for meter in meters["offline"]:
            click.echo(f"  offline: {meter}")


@click.command("sim")
@click.option("--scenario", "scenario_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5020, show_default=True)
@click.option("--speed", default=1.0, show_default=True, help="simulated seconds per real second")
@click.option("--start", default="",
              help="simulated start time (ISO, UTC unless it says otherwise); default: the scenario's period start")
def sim(scenario_path, host, port, speed, start):
    """Serve a scenario's meters over Modbus TCP (a unit id per meter, Eastron register maps).

    Example: balans sim --scenario examples/seed-cottage-town.toml --port 5020 --speed 3600
    """
    try:
        scenario = load_scenario(Path(scenario_path).read_text(encoding="utf-8"), scenario_path)
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from exc
    begin = parse_iso(start) if start else scenario.period_start
    station = SimulatedStation(scenario, AcceleratedClock(begin, speed), host, port)
    click.echo(f"simulating {scenario.site} ({len(scenario.meters)} meters) on {host}:{port}, "
               f"units 1..{len(scenario.meters)}", err=True)
    try:
        asyncio.run(serve_forever(station))
    except KeyboardInterrupt:
        click.echo("simulator stopped", err=True)
