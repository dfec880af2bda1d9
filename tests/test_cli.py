"""The ``balans`` command: every command has help with an example; the gateway answers offline."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import click
from click.testing import CliRunner

from edge.gateway import Gateway
from edge.simulator import SimulatedStation
from provisioning.cli import main


def walk(group: click.Group, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from walk(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_command_has_help_with_an_example():
    missing = [" ".join(path) for path, command in walk(main) if "Example:" not in (command.help or "")]
    assert missing == []


def test_the_gateway_prints_its_balance_without_the_cloud(station_setup):
    scenario, clock, port, config = station_setup

    async def one_day():
        async with SimulatedStation(scenario, clock, "127.0.0.1", port):
            gateway = Gateway(config, clock)
            await gateway.poll_loop(until=scenario.period_start + timedelta(days=1))
            await gateway.close()

    asyncio.run(one_day())
    config_path = config.database.parent / "gateway.toml"
    result = CliRunner().invoke(main, ["edge", "balance", "--config", str(config_path), "--period", "2026-10",
                                       "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["period"] == "2026-10"
    assert set(document["station"]) >= {"input_kwh", "feeders_kwh", "loss_kwh", "loss_pct"}
    # One day of a month is not the month: every line says so rather than guessing.
    assert {line["status"] for line in document["lines"]} == {"incomplete"}
    status = CliRunner().invoke(main, ["edge", "status", "--config", str(config_path), "--json"])
    assert json.loads(status.output)["meters"]["online"] == len(scenario.meters)


def test_a_broken_config_names_the_key(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nid = "gw"\n[[bus]]\nname = "a"\nkind = "rtu"\n')
    result = CliRunner().invoke(main, ["edge", "status", "--config", str(path)])
    assert result.exit_code != 0
    assert "device" in result.output and "[[bus]] #1" in result.output
