"""A local, read-only health endpoint for monitoring: GET /health → the gateway's status as JSON.

Bound to 127.0.0.1 by default; answers 200 when the gateway is polling and its uplink is not refused,
503 otherwise (so a watchdog or Zabbix can alert on it).
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from edge.energy_reports import gateway_status

log = logging.getLogger("balans.edge.health")


def health_app(gateway) -> web.Application:
    async def health(_request: web.Request) -> web.Response:
        status = await gateway.store.read(lambda db: gateway_status(db, gateway.config))
        polling = gateway.last_cycle is not None and time.monotonic() - gateway.last_cycle < 3 * gateway.config.poll_seconds
        healthy = polling and gateway.refused is None
        status |= {"healthy": healthy, "polling": polling, "uplink_refused": gateway.refused is not None,
                   "cycles": gateway.cycles}
        return web.Response(text=json.dumps(status, ensure_ascii=False), status=200 if healthy else 503,
                            content_type="application/json")

    app = web.Application()
    app.router.add_get("/health", health)
    return app


async def serve_health(gateway, host: str = "127.0.0.1", port: int = 0) -> web.AppRunner:
    runner = web.AppRunner(health_app(gateway), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("health endpoint on http://%s:%s/health", host, port)
    return runner
