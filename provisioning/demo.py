"""The demo: the seed's cottage town from simulated meters to invoices, on one machine.

Starts the cloud (a real HTTP server on SQLite), a simulated station (a real Modbus TCP
server) and one gateway. Simulated time runs on a virtual clock, so a whole month is read,
balanced, forwarded and billed in about a minute — with exact monthly totals.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import click
from sqlalchemy import select

from cloud import create_app
from cloud.accounts.organisations import (
    create_organisation,
    create_site,
    create_user,
    set_tariff,
    upsert_account,
)
from cloud.billing.run import billing_run
from cloud.db import session_scope
from cloud.ingest.enrolment import issue_token
from cloud.migrate import upgrade
from cloud.models import Site
from cloud.sites.balance import site_balance
from edge.clock import VirtualClock
from edge.config import config_toml_from_scenario, load_config
from edge.energy_reports import gateway_balance
from edge.gateway import Gateway
from edge.simulator import SimulatedStation
from provisioning.enrolment import enrol
from provisioning.ports import free_port
from shared.calendar import period_days
from shared.scenario import Scenario, load_scenario

MANAGER = ("manager@demo.balans.ua", "demo-manager-2026")
RESIDENT_PASSWORD = "demo-resident-2026"


@dataclass
class DemoLogins:
    manager: tuple[str, str]
    resident: tuple[str, str]
    resident_account: str


def seed_cloud(url: str, scenario: Scenario) -> tuple[str, DemoLogins]:
    """Create the organisation, site, tariff, accounts and demo users; return an enrolment token."""
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "demo-seed"})
    org_info = scenario.organisation
    theft_line = max(scenario.line_names, key=lambda n: n == "4")
    resident_meter = next(m for m in scenario.subscribers() if m.line == theft_line)
    with session_scope(app) as db:
        org = create_organisation(db, org_info["name"], org_info.get("kind", "cooperative"),
                                  org_info.get("edrpou", ""), org_info.get("iban", ""),
                                  org_info.get("address", ""), actor="demo")
        site = create_site(db, org, scenario.site, scenario.site_name, scenario.thresholds.elevated_pct,
                           scenario.thresholds.theft_pct, actor="demo")
        year = int(scenario.period[:4])
        set_tariff(db, org, scenario.tariff.get("kind", "cooperative"),
                   Decimal(scenario.tariff["purchase_uah_per_kwh"]), Decimal(scenario.tariff.get("coefficient", "1")),
                   date(year, 1, 1), actor="demo")
        accounts = {}
        for meter in scenario.subscribers():
            accounts[meter.account] = upsert_account(db, org, meter.account, meter.holder, meter.address, site)
        create_user(db, MANAGER[0], MANAGER[1], "manager", org, name="Голова правління", actor="demo")
        resident_email = f"resident{resident_meter.account}@demo.balans.ua"
        create_user(db, resident_email, RESIDENT_PASSWORD, "resident", org, name=resident_meter.holder,
                    account=accounts[resident_meter.account], actor="demo")
        token = issue_token(db, site, 2, actor="demo")
    return token, DemoLogins(MANAGER, (resident_email, RESIDENT_PASSWORD), resident_meter.account)


def start_cloud(url: str, port: int, workdir: Path) -> subprocess.Popen:
    env = {**os.environ, "BALANS_DATABASE_URL": url, "BALANS_SECRET_KEY": os.urandom(16).hex(),
           "BALANS_INSTANCE_PATH": str((workdir / "instance").resolve())}
    log = open(workdir / "cloud.log", "ab")  # noqa: SIM115 (the server process owns it)
    process = subprocess.Popen(
        [sys.executable, "-m", "provisioning.cli", "cloud", "serve", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the cloud exited at start; see {workdir / 'cloud.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the cloud did not answer on port {port} within 30 s; see {workdir / 'cloud.log'}")


async def run_month(scenario: Scenario, config_path: Path, token: str, cloud_url: str, modbus_port: int,
                    progress) -> dict:
    """Simulator + gateway on a virtual clock: poll the whole month, forward everything, balance."""
    clock = VirtualClock(scenario.period_start)
    station = SimulatedStation(scenario, clock, "127.0.0.1", modbus_port)
    config = load_config(config_path)
    await station.start()
    try:
        await asyncio.to_thread(enrol, config, token, cloud_url)
        gateway = Gateway(config, clock)
        forward = asyncio.create_task(gateway.forward_loop())
        first_day, last_day_of_period = period_days(scenario.period)
        days = (last_day_of_period - first_day).days + 1  # calendar days: March has 31, not 30 days and 23 h
        last_day = -1

        async def report() -> None:
            nonlocal last_day
            while True:
                day = (clock.now() - scenario.period_start).days
                if day != last_day:
                    last_day = day
                    progress(min(day, days), days)
                await asyncio.sleep(0.25)

        reporter = asyncio.create_task(report())
        await gateway.poll_loop(until=scenario.period_end)
        reporter.cancel()
        progress(days, days)
        await gateway.seal()
        while await gateway.pending_batches():
            if gateway.refused is not None:
                raise RuntimeError(f"the cloud refused a batch: {gateway.refused}")
            gateway.outbox_changed.set()
            await asyncio.sleep(0.1)
        forward.cancel()
        balance = gateway.store.read_sync(lambda db: gateway_balance(db, config, scenario.period))
        await gateway.close()
        return balance.as_json()
    finally:
        await station.stop()


def bill_in_cloud(url: str, scenario: Scenario) -> tuple[dict, dict]:

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "demo-billing"})
    with session_scope(app) as db:
        site = db.scalar(select(Site).where(Site.code == scenario.site))
        result = billing_run(db, site, scenario.period, issue=True, actor="demo")
        balance = site_balance(db, site, scenario.period).as_json()
    billing = {k: result.summary[k] for k in ("purchase_uah", "distributed_kwh", "distributed_uah",
                                              "cost_recovery_pct", "break_even_coefficient")}
    billing["invoices"] = result.invoices
    return balance, billing


def run_demo(scenario_path: Path, workdir: Path, port: int = 8000, headless: bool = False,
             poll_seconds: int = 3600, echo=print) -> dict:
    scenario = load_scenario(scenario_path.read_text(encoding="utf-8"), str(scenario_path))
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    url = f"sqlite:///{(workdir / 'cloud.sqlite3').resolve()}"
    cloud_port = free_port() if headless else port
    cloud_url = f"http://127.0.0.1:{cloud_port}"
    modbus_port = free_port()
    token, logins = seed_cloud(url, scenario)
    config_path = workdir / "gateway.toml"
    config_path.write_text(config_toml_from_scenario(
        scenario, gateway_id=f"gw-{scenario.site.lower()}", host="127.0.0.1", port=modbus_port,
        cloud_url=cloud_url, poll_seconds=poll_seconds), encoding="utf-8")
    server = start_cloud(url, cloud_port, workdir)
    stop_on_sigterm()
    try:
        echo(f"☁  cloud on {cloud_url}; ⚡ simulated station {scenario.site} on Modbus TCP 127.0.0.1:{modbus_port}")
        started = time.monotonic()

        def progress(day: int, days: int) -> None:
            bar = "█" * day + "·" * (days - day)
            echo(f"\r  {scenario.period}: day {day:2d}/{days} {bar}", end="" if day < days else "\n")

        gateway = asyncio.run(run_month(scenario, config_path, token, cloud_url, modbus_port, progress))
        cloud_balance, billing = bill_in_cloud(url, scenario)
        echo(f"  month read, balanced, forwarded and billed in {time.monotonic() - started:.0f} s")
        document = {"period": scenario.period, "gateway": gateway, "cloud": cloud_balance, "billing": billing}
        if headless:
            return document
        echo("")
        echo(f"  Manager dashboard: {cloud_url}/sites/{scenario.site}?period={scenario.period}")
        echo(f"      login {logins.manager[0]}  password {logins.manager[1]}")
        echo(f"  Resident cabinet:  {cloud_url}/cabinet/  (account {logins.resident_account})")
        echo(f"      login {logins.resident[0]}  password {logins.resident[1]}")
        try:
            # Said inside the try: a Ctrl-C or kill that follows the words at once is still a clean stop.
            echo("  Ctrl-C stops everything.")
            while server.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            echo("\nstopping…")
        return document
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def stop_on_sigterm() -> None:
    """``kill`` or a service manager's SIGTERM stops the demo as Ctrl-C does: the cloud goes down with it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def dump(document: dict) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2)


@click.command("demo")
@click.option("--scenario", "scenario_path", default="examples/seed-cottage-town.toml", show_default=True,
              type=click.Path(exists=True, dir_okay=False))
@click.option("--headless", is_flag=True, help="no web pages: run the month, print the result, exit")
@click.option("--json", "as_json", is_flag=True, help="print the result as one JSON document")
@click.option("--port", default=8000, show_default=True, help="the cloud's port (not headless)")
@click.option("--workdir", default="var/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--poll-seconds", default=3600, show_default=True, help="simulated seconds between polls")
def demo_command(scenario_path, headless, as_json, port, workdir, poll_seconds):
    """The seed's cottage town end to end: simulated meters → gateway → cloud → invoices.

    Example: balans demo --headless --scenario examples/seed-cottage-town.toml --json
    """
    def echo(text="", end="\n"):
        click.echo(text, nl=False, err=True)
        click.echo(end, nl=False, err=True)

    document = run_demo(Path(scenario_path), Path(workdir), port, headless, poll_seconds, echo)
    if as_json:
        click.echo(dump(document))
    elif headless:
        billing = document["billing"]
        click.echo(f"{document['period']}: {billing['invoices']} invoices, {billing['distributed_uah']} UAH, "
                   f"cost recovery {billing['cost_recovery_pct']} %, break-even {billing['break_even_coefficient']}")
