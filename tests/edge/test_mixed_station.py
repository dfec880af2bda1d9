"""One station whose meters speak three protocols — the feeders and most households over Modbus TCP, one
household's meter by IEC 62056-21 (an OBIS readout), another's over M-Bus — read by one gateway through a day:
every meter's energy is the counter's change to the Wh, and every line's balance closes as on an all-Modbus
station. Protocols change nothing past the meter reader."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from edge.config import BusConfig
from edge.energy_reports import meter_energy
from edge.gateway import Gateway
from edge.iec62056_simulator import SimulatedLine, SimulatedMeter, readout_lines
from edge.iec62056_simulator import serve_tcp as serve_iec
from edge.mbus_simulator import SimulatedMbusLine, SimulatedMbusMeter, energy_record, rsp_ud
from edge.mbus_simulator import serve_tcp as serve_mbus
from edge.simulator import SimulatedStation
from provisioning.ports import free_port
from shared.balance import station_balance


def test_a_station_of_modbus_iec_and_mbus_meters_closes_its_balance(station_setup):
    scenario, clock, port, config = station_setup
    subscribers = [m for m in scenario.meters if m.role == "subscriber"]
    by_iec, by_mbus = subscribers[0], subscribers[1]
    station = SimulatedStation(scenario, clock, "127.0.0.1", port)
    iec_model, mbus_model = station.meters[by_iec.unit].model, station.meters[by_mbus.unit].model

    iec_port, mbus_port = free_port(), free_port()
    iec_server = serve_iec("127.0.0.1", iec_port, SimulatedLine([SimulatedMeter(
        identification="/NIK5NIK2303", live=lambda: readout_lines(iec_model.values(clock.now())))]))
    mbus_server = serve_mbus("127.0.0.1", mbus_port, SimulatedMbusLine([SimulatedMbusMeter(5, b"", live=lambda: rsp_ud(
        "00017001", energy_record(round(mbus_model.values(clock.now())["import_kwh"] * 1000)), address=5))]))
    meters = tuple(
        replace(m, bus="optical", profile="iec62056-obis-readout") if m.id == by_iec.meter else
        replace(m, bus="mbus", unit=5, profile="mbus-electricity-meter") if m.id == by_mbus.meter else m
        for m in config.meters)
    # One process serves three protocols' simulators beside the gateway: on a loaded machine a Modbus answer can
    # take longer than the 0.3 s a real meter gets, so the station's buses wait longer here.
    mixed = replace(config, meters=meters, buses=(*(replace(b, timeout=2.0) for b in config.buses), BusConfig(
        name="optical", kind="iec62056-21", device=f"socket://127.0.0.1:{iec_port}", timeout=1.5), BusConfig(
        name="mbus", kind="mbus", device=f"socket://127.0.0.1:{mbus_port}", timeout=0.5)))
    start, end = scenario.period_start, scenario.period_start + timedelta(days=1)

    async def day():
        async with station:
            station.silence(by_iec.unit)  # on the Modbus bus no more: each answers only on its own line
            station.silence(by_mbus.unit)
            gateway = Gateway(mixed, clock)
            try:
                await gateway.poll_loop(until=end)
                return gateway.store.read_sync(lambda db: meter_energy(db, start, end, 15))
            finally:
                await gateway.close()

    try:
        energy = asyncio.run(day())
    finally:
        for server in (iec_server, mbus_server):
            server.shutdown()
            server.server_close()
    for meter in scenario.meters:
        assert energy[meter.meter].complete, meter.meter
        model = station.meters[meter.unit].model
        expected = Decimal(repr(model.values(end)["import_kwh"] - model.values(start)["import_kwh"]))
        # float32 Modbus counters allow ±0.008 kWh a reading; the IEC and M-Bus ones are exact to the Wh
        tolerance = Decimal("0.02") if meter.meter not in (by_iec.meter, by_mbus.meter) else Decimal("0.002")
        assert abs(energy[meter.meter].import_kwh - expected) < tolerance, meter.meter
    balance = station_balance(mixed.topology(), energy, mixed.thresholds)
    assert all(line.loss_kwh is not None and not line.missing for line in balance.lines)
    # The same lines, the same verdicts as the scenario's counters give (line 4's theft stays theft).
    truth = {meter.meter: replace(energy[meter.meter], import_kwh=Decimal(repr(
        station.meters[meter.unit].model.values(end)["import_kwh"]
        - station.meters[meter.unit].model.values(start)["import_kwh"]))) for meter in scenario.meters}
    expected = station_balance(mixed.topology(), truth, mixed.thresholds)
    for line, true in zip(balance.lines, expected.lines, strict=True):
        assert line.status == true.status and abs(line.loss_kwh - true.loss_kwh) < Decimal("0.1"), line.line
