"""A district-heating company end to end over real sockets: КП «Теплоенерго»'s будинок 12 has its building heat
meter and two flats' heat meters on one M-Bus line (a level converter behind a serial-to-Ethernet server), read
by a gateway through October's heating days, enrolled into the cloud and its signed batches accepted over HTTP;
the heat billing run then bills the meters' counter changes over the heating days to the millionth of a Gcal,
with no reading typed for a meter the gateway reads — the office types only flat 4's old meter."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from cloud.accounts.organisations import upsert_account
from cloud.api.tokens import make_token
from cloud.billing.heat_run import GCAL, set_heating_season
from cloud.billing.office_readings import enter_round, reading_round
from cloud.billing.run import billing_run
from cloud.ingest.enrolment import issue_token
from cloud.models import Account, Batch, Invoice, Meter, Reading, Site
from edge.clock import VirtualClock
from edge.config import load_config
from edge.gateway import Gateway
from edge.mbus_bus import WH_PER_GCAL
from edge.mbus_simulator import SimulatedMbusLine, SimulatedMbusMeter, rsp_ud
from edge.mbus_simulator import serve_tcp as serve_mbus
from provisioning.enrolment import enrol
from provisioning.ports import free_port
from shared.calendar import from_kyiv_wall, kyiv_midnight
from tests.cloud.office import office

pytestmark = pytest.mark.slow

HEAT = 0x04  # EN 13757-3 medium: heat (outlet)
KAMSTRUP, SENSUS = b"\x2d\x2c", b"\xae\x4c"  # the manufacturer codes KAM and SEN, little-endian
SEASON_STARTS = datetime(2026, 10, 15)  # Kyiv wall clock, as the council declares it
NOV = datetime(2026, 11, 1)


class HeatMeter:
    """A heat meter whose counter moves with the virtual clock: ``kw`` of heat from ``start_wh``. A MULTICAL
    counts whole kWh and sends them as Kamstrup does (04 06 kWh, 04 14 volume in 0.01 m³, 04 59 / 04 5D
    temperatures in 0.01 °C, 04 3B flow in l/h — libmbus's kamstrup_multical_601 frame); a flat's meter counts
    Wh (07 03: a 64-bit integer of Wh, 04 13 litres, 02 5A / 02 5E temperatures in 0.1 °C)."""

    def __init__(self, clock: VirtualClock, identification: str, address: int, start_wh: int, kw: int,
                 multical: bool = False, silent_at: datetime | None = None):
        self.clock, self.identification, self.address = clock, identification, address
        self.start_wh, self.kw, self.t0, self.silent_at = start_wh, kw, clock.now(), silent_at
        self.multical = multical

    def wh(self, at: datetime) -> int:
        wh = self.start_wh + round(self.kw * 1000 * (at - self.t0).total_seconds() / 3600)
        return wh // 1000 * 1000 if self.multical else wh

    def gcal(self, at: datetime) -> Decimal:
        """What the meter's counter shows in Gcal, as the gateway converts it (to a millionth)."""
        return (Decimal(self.wh(at)) / WH_PER_GCAL).quantize(Decimal("0.000001"))

    def frame(self) -> bytes:
        wh = self.wh(self.clock.now())
        if self.multical:
            records = (bytes([0x04, 0x06]) + (wh // 1000).to_bytes(4, "little") + bytes([0x04, 0x14])
                       + (wh // 500).to_bytes(4, "little") + bytes([0x04, 0x59]) + (7520).to_bytes(4, "little")
                       + bytes([0x04, 0x5D]) + (4810).to_bytes(4, "little") + bytes([0x04, 0x3B])
                       + (5400).to_bytes(4, "little"))
            return rsp_ud(self.identification, records, medium=HEAT, manufacturer=KAMSTRUP, address=self.address)
        records = (bytes([0x07, 0x03]) + wh.to_bytes(8, "little") + bytes([0x04, 0x13])
                   + (wh // 50).to_bytes(4, "little") + bytes([0x02, 0x5A]) + (752).to_bytes(2, "little")
                   + bytes([0x02, 0x5E]) + (481).to_bytes(2, "little"))
        return rsp_ud(self.identification, records, medium=HEAT, manufacturer=SENSUS, address=self.address)

    def on_line(self) -> SimulatedMbusMeter:
        return QuietOnce(self.address, self.frame(), live=self.frame, clock=self.clock, silent_at=self.silent_at)


@dataclass
class QuietOnce(SimulatedMbusMeter):
    """A meter on the simulated line that does not answer its data request at one instant (a poll missed)."""

    clock: VirtualClock | None = None
    silent_at: datetime | None = None

    def answer(self, address: int) -> bytes:
        return b"" if self.clock.now() == self.silent_at else super().answer(address)


@pytest.fixture
def cloud(app):
    running = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{running.server_port}"
    running.shutdown()
    running.server_close()


@pytest.fixture
def heat_company(db):
    """Будинок 12 in the cloud: flats 1 (heated by area), 2 and 3 (M-Bus meters, the gateway's), 4 (an old
    meter the office reads); the heating season from 15 October; an enrolment token and an API token."""
    with db() as session:
        org, site = office(session, kind="heat", name="КП «Теплоенерго»", code="B-12", price="1654.18",
                           coefficient="1")
        site.heat_common_share = Decimal("0.1")
        for number, area in (("1", "52.4"), ("2", "70"), ("3", "64.8"), ("4", "81")):
            account = upsert_account(session, org, number, f"Мешканець {number}", f"вул. Шкільна, 12, кв. {number}",
                                     site)
            account.heated_area_m2 = Decimal(area)
            if number == "1":
                continue  # heated by area: no meter of its own
            # The company's register of meters, from before the gateway came: the gateway's enrolment binds them.
            session.add(Meter(org_id=org.id, site_id=site.id, code=f"HM-{number}", role="subscriber",
                              account_id=account.id))
        session.add(Meter(org_id=org.id, site_id=site.id, code="TB-12", role="heat_building"))
        session.flush()
        set_heating_season(session, org, SEASON_STARTS.date(), date(2027, 4, 15))
        return issue_token(session, site), make_token(session, org, "month", "clerk", "admin@teplo.ua")[1]


def gateway_toml(cloud_url: str, mbus_port: int) -> str:
    return f"""
[gateway]
id = "gw-b12"
site = "B-12"
poll_seconds = 21600
heartbeat_seconds = 0

[cloud]
url = "{cloud_url}"

[[bus]]
name = "heat"
kind = "mbus"
device = "socket://127.0.0.1:{mbus_port}"

[[line]]
number = "1"
name = "Квартирні теплолічильники"  # as a bus scan proposes it: the flats' meters; the building's on none

[[meter]]
id = "TB-12"
bus = "heat"
unit = 1
profile = "kamstrup-multical"
role = "heat_building"

[[meter]]
id = "HM-2"
bus = "heat"
unit = 2
profile = "mbus-heat-meter"
role = "subscriber"
line = "1"
account = "2"

[[meter]]
id = "HM-3"
bus = "heat"
unit = 3
address = "00012203{SENSUS.hex().upper()}01{HEAT:02X}"
profile = "mbus-heat-meter"
role = "subscriber"
line = "1"
account = "3"
"""


async def heating_days(config, clock: VirtualClock, token: str, cloud_url: str, until: datetime) -> Gateway:
    await asyncio.to_thread(enrol, config, token, cloud_url)
    gateway = Gateway(config, clock)
    forward = asyncio.create_task(gateway.forward_loop())
    try:
        await gateway.poll_loop(until=until)
        await gateway.seal()
        while await gateway.pending_batches():
            assert gateway.refused is None, gateway.refused.body
            gateway.outbox_changed.set()
            await asyncio.sleep(0.05)
    finally:
        forward.cancel()
        await gateway.close()
    return gateway


@pytest.mark.timeout(120)
def test_a_heat_networks_meters_read_by_its_gateway_are_billed_without_hand_entry(db, cloud, heat_company, tmp_path):
    token, secret = heat_company
    clock = VirtualClock(kyiv_midnight(SEASON_STARTS.date() - timedelta(days=1)))
    season_starts, november = kyiv_midnight(SEASON_STARTS.date()), kyiv_midnight(NOV.date())
    # The building's MULTICAL had counted 1 074.8 Gcal before this season.
    building = HeatMeter(clock, "00012201", 1, 1_250_000_000, 310, multical=True)
    flat2 = HeatMeter(clock, "00012202", 2, 21_300_000, 18)
    # Flat 3's meter misses the poll at the season's first midnight: its counter there is interpolated.
    flat3 = HeatMeter(clock, "00012203", 3, 9_870_500, 23, silent_at=season_starts)
    mbus_port = free_port()
    server = serve_mbus("127.0.0.1", mbus_port, SimulatedMbusLine([m.on_line() for m in (building, flat2, flat3)]))
    path = tmp_path / "gateway.toml"
    path.write_text(gateway_toml(cloud, mbus_port), encoding="utf-8")
    try:
        gateway = asyncio.run(heating_days(load_config(path), clock, token, cloud, november))
    finally:
        server.shutdown()
        server.server_close()
    # Every 6 hours from each Kyiv midnight: 18 days (one of 25 hours, the clocks going back) and 1 November's.
    assert gateway.refused is None and gateway.cycles == 4 * 18 + 1 + 1
    counted = {code: meter.gcal(november) - meter.gcal(season_starts)
               for code, meter in (("TB-12", building), ("HM-2", flat2), ("HM-3", flat3))}

    heating_start, heating_end = from_kyiv_wall(SEASON_STARTS), from_kyiv_wall(NOV)
    with db() as session:
        site = session.scalar(select(Site).where(Site.code == "B-12"))
        assert session.scalar(select(func.count()).select_from(Batch)) > 0
        assert session.scalar(select(func.count()).select_from(Reading)) == 3 * gateway.cycles - 1
        # The office's round at the month's end asks only for flat 4's old meter; one the gateway read is
        # refused, as the gateway's reading stands.
        assert [row.meter.code for row in reading_round(session, site, heating_end, "heat_gcal").rows] == ["HM-4"]
        _, errors = enter_round(session, site, heating_end, {"HM-2": "25.0"}, "clerk@teplo.ua", "heat_gcal")
        assert errors["HM-2"].code == "err_reading_exists"
        for at, value in ((heating_start, "31.2500"), (heating_end, "33.0125")):
            assert enter_round(session, site, at, {"HM-4": value}, "clerk@teplo.ua", "heat_gcal") == (1, {})
        assert reading_round(session, site, heating_end, "heat_gcal").unread == 0

    # The month's page, over HTTP: every meter read — the building's and flats 2 and 3 by the gateway.
    request = urllib.request.Request(f"{cloud}/api/v1/sites/B-12/month/2026-10",
                                     headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        month = json.loads(response.read())
    assert month["error"] is None and month["unit"] == "Gcal"
    assert month["building"] == {"meter": "TB-12", "read": True, "gcal": f"{counted['TB-12']:f}"}
    assert [(r["account"], r["state"]) for r in month["readings"]] == [
        ("2", "measured"), ("3", "measured"), ("4", "measured")]
    assert month["read_by"] == {"TB-12": ["gateway"], "HM-2": ["gateway"], "HM-3": ["gateway"], "HM-4": ["office"]}

    with db() as session:
        site = session.scalar(select(Site).where(Site.code == "B-12"))
        result = billing_run(session, site, "2026-10", actor="clerk@teplo.ua")
        invoices = {number: invoice for invoice, number in session.execute(
            select(Invoice, Account.number).join(Account, Account.id == Invoice.account_id))}
    assert result.problems == [] and result.invoices == 4
    assert (result.summary["building_gcal"], result.summary["heating_days"]) == (f"{counted['TB-12']:f}", 17)
    billed = {m["meter"]: Decimal(m["quantity"]) for invoice in invoices.values() for m in invoice.meters}
    assert billed["TB-12"] == counted["TB-12"] and billed["HM-2"] == counted["HM-2"]
    # Interpolated between the readings six hours either side, to the millionth the gateway reads.
    assert abs(billed["HM-3"] - counted["HM-3"]) <= Decimal("0.000001")
    assert billed["HM-4"] == Decimal("1.7625")
    assert sum((i.quantity_kwh for i in invoices.values()), Decimal(0)) == counted["TB-12"].quantize(GCAL)
