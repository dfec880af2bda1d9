"""Store-and-forward against a cloud that is down, fails, throttles or is slow — and one that refuses for good."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import create_engine, text

from edge.clock import VirtualClock
from edge.config import config_toml_from_scenario, load_config
from edge.gateway import Gateway
from edge.simulator import SimulatedStation
from edge.store import open_database
from edge.uplink import Uplink
from provisioning.demo import seed_cloud, start_cloud
from provisioning.enrolment import enrol
from provisioning.ports import free_port

pytestmark = pytest.mark.slow


class FlakyCloud:
    """A stand-in in front of the real cloud: misbehaves per a script of answers, then forwards."""

    def __init__(self, upstream: str, script: list[str]):
        self.upstream = upstream
        self.script = list(script)
        self.seen: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        step = self.script.pop(0) if self.script else "forward"
        self.seen.append(step)
        if step == "500":
            return web.json_response({"error": "internal"}, status=500)
        if step == "429":
            return web.json_response({"error": "rate_limited"}, status=429, headers={"Retry-After": "1"})
        if step == "slow":
            await asyncio.sleep(3)
        body = await request.read()  # aiohttp has already undone the gzip
        headers = {k: v for k, v in request.headers.items() if k.startswith("X-Balans")}
        async with aiohttp.ClientSession() as session, session.post(
                self.upstream + request.path, data=body, headers=headers) as answer:
            return web.Response(body=await answer.read(), status=answer.status, content_type="application/json")


async def poll_two_hours(scenario, clock, config):
    station = SimulatedStation(scenario, clock, "127.0.0.1", config.buses[0].port)
    async with station:
        gateway = Gateway(config, clock)
        await gateway.poll_loop(until=scenario.period_start + timedelta(hours=2))
        return gateway


@pytest.fixture
def cloud(tmp_path, seed_scenario):
    url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    token, _ = seed_cloud(url, seed_scenario)
    port = free_port()
    server = start_cloud(url, port, tmp_path)
    yield url, f"http://127.0.0.1:{port}", token
    server.terminate()
    server.wait(timeout=10)


def gateway_config(tmp_path, scenario, cloud_url):
    path = tmp_path / "gateway.toml"
    path.write_text(config_toml_from_scenario(scenario, gateway_id="gw-flaky", host="127.0.0.1", port=free_port(),
                                              cloud_url=cloud_url, poll_seconds=3600), encoding="utf-8")
    return load_config(path)


def test_down_failing_throttled_and_slow_clouds_lose_and_double_nothing(tmp_path, seed_scenario, cloud):
    url, cloud_url, token = cloud
    proxy_port = free_port()
    flaky = FlakyCloud(cloud_url, ["500", "429", "slow", "500"])
    config = gateway_config(tmp_path, seed_scenario, f"http://127.0.0.1:{proxy_port}")
    enrol(config, token, cloud_url)

    async def scenario():
        gateway = await poll_two_hours(seed_scenario, VirtualClock(seed_scenario.period_start), config)
        gateway.uplink = Uplink(f"http://127.0.0.1:{proxy_port}", config.gateway_id, timeout=1.5, attempts=10,
                                max_wait=1.0)
        # The cloud is down: nothing answers on the port yet.
        with pytest.raises(Exception, match="network"):
            await gateway.uplink.post_once(1, b"{}", b"x" * 64)
        app = web.Application()
        app.router.add_post("/api/v1/batches", flaky.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", proxy_port).start()
        try:
            delivered = await gateway.forward_pending()
        finally:
            await runner.cleanup()
            await gateway.close()
        return delivered, gateway

    delivered, _ = asyncio.run(scenario())
    assert flaky.seen[:4] == ["500", "429", "slow", "500"]
    local = open_database(config.database)
    assert local.batch_counts() == {"sent": delivered}
    readings = local.conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM batches")).scalar_one() == delivered
        assert conn.execute(text("SELECT count(*) FROM readings")).scalar_one() == readings
    engine.dispose()


def test_a_permanent_refusal_stops_sending_keeps_everything_and_raises_an_alert(tmp_path, seed_scenario, cloud):
    _, cloud_url, _ = cloud
    config = gateway_config(tmp_path, seed_scenario, cloud_url)  # never enrolled: the cloud does not know it

    async def scenario():
        gateway = await poll_two_hours(seed_scenario, VirtualClock(seed_scenario.period_start), config)
        delivered = await gateway.forward_pending()
        await gateway.close()
        return delivered, gateway

    delivered, gateway = asyncio.run(scenario())
    assert delivered == 0 and gateway.refused is not None and gateway.refused.status == 401
    local = open_database(config.database)
    counts = local.batch_counts()
    assert counts["refused"] == 1 and counts["pending"] >= 1
    assert local.conn.execute("SELECT kind FROM events WHERE kind = 'uplink_refused'").fetchone() is not None
