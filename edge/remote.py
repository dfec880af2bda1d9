"""The gateway's side of cloud → gateway (docs/remote.md): a signed heartbeat every ``heartbeat_seconds``; from its
answer, the diagnostic requests to run (``log``, ``reread``) and the newest site configuration version, which is
fetched, checked against the organisation's key, written atomically, tried on the meters and rolled back when
none answers. The gateway only calls out; every message it sends is signed with its own key.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import logging
import shutil
import time
import tomllib
from collections import deque
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from edge.config import ConfigError, GatewayConfig, load_config
from edge.durable import write_atomically
from edge.meter_reader import BusReader, MeterUnavailable, open_bus
from edge.store import GatewayDatabase
from edge.update import UpdateAgent
from shared.batch import BatchError, b64, canonical_bytes, load_public_key, unb64, verify_signature
from shared.calendar import as_utc
from shared.remote import MAX_LOG_LINES, MESSAGE_VERSION, METER_KEYS, RemoteError, check_config

log = logging.getLogger("balans.edge.remote")

TRIAL_SECONDS = 15.0  # how long a new configuration has to get one meter to answer before it is rolled back
LOG_RING = 1000


class LogRing(logging.Handler):
    """The gateway's last log lines in memory, for a ``log`` request (journald keeps the rest)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=LOG_RING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            self.lines.append(f"{stamp}Z {record.levelname} {record.name}: {record.getMessage()}")
        except Exception:
            self.handleError(record)


def log_ring() -> LogRing:
    logger = logging.getLogger("balans")
    for handler in logger.handlers:
        if isinstance(handler, LogRing):
            return handler
    ring = LogRing()
    logger.addHandler(ring)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return ring


class RemoteRefused(Exception):
    def __init__(self, status: int, answer: dict):
        super().__init__(f"HTTP {status}: {answer.get('message', answer)}")
        self.status, self.answer = status, answer


def stamp(at: datetime) -> str:
    return as_utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def software_version() -> str:
    try:
        return importlib.metadata.version("balans")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def authored(config: GatewayConfig) -> dict[str, Any]:
    """What of this configuration the cloud may author (shared.remote.check_config's parts)."""
    meters = []
    for m in config.meters:
        meter: dict[str, Any] = {"id": m.id, "bus": m.bus, "unit": m.unit, "profile": m.profile, "role": m.role,
                                 "max_kw": f"{m.max_kw}"}
        for key in ("line", "account", "address"):
            if getattr(m, key):
                meter[key] = getattr(m, key)
        for key in ("channel", "retries"):
            if getattr(m, key):
                meter[key] = getattr(m, key)
        meters.append(meter)
    return {"poll_seconds": config.poll_seconds, "lines": dict(config.lines), "meters": meters,
            "thresholds": {"elevated_pct": f"{config.thresholds.elevated_pct}",
                           "theft_pct": f"{config.thresholds.theft_pct}"}}


# --- the configuration file -------------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml_text(data: dict[str, Any]) -> str:
    """TOML for a gateway configuration: top-level tables and arrays of tables of plain values."""
    out = ["# Written by the gateway from the cloud's site configuration (docs/remote.md)."]
    for name, value in data.items():
        if isinstance(value, dict):
            out += ["", f"[{name}]", *(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items())]
        elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
            for item in value:
                out += ["", f"[[{name}]]", *(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in item.items())]
        else:
            out.insert(1, f"{json.dumps(name)} = {_toml_value(value)}")
    return "\n".join(out) + "\n"


def merged_toml(current: str, document: dict[str, Any]) -> str:
    """The gateway's file with the cloud's parts replaced: what only the gateway knows ([gateway] identity, keys,
    [cloud], [[bus]], a meter's password or timeout) stays."""
    data = tomllib.loads(current)
    data.setdefault("gateway", {})["poll_seconds"] = document["poll_seconds"]
    data["thresholds"] = {**data.get("thresholds", {}), **document["thresholds"]}
    data["line"] = [{"number": number, "name": name} for number, name in document["lines"].items()]
    old = {str(m.get("id")): m for m in data.get("meter", [])}
    data["meter"] = [{**{k: v for k, v in old.get(m["id"], {}).items() if k not in METER_KEYS}, **m}
                     for m in document["meters"]]
    data["remote"] = {"version": document["version"]}
    return toml_text(data)


async def trial_read(config: GatewayConfig, timeout: float = TRIAL_SECONDS) -> tuple[dict[str, BusReader], list[str]]:
    """Open the configuration's buses and read each meter once; the buses and the meters that answered."""
    profiles = config.profiles()
    buses = {b.name: open_bus(b, profiles) for b in config.buses}
    answered: list[str] = []

    async def one_bus(name: str) -> None:
        for meter in (m for m in config.meters if m.bus == name):
            try:
                await buses[name].read(meter)
                answered.append(meter.id)
            except MeterUnavailable:
                pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(one_bus(name) for name in buses)), timeout)
    return buses, answered


class Remote:
    """The heartbeat loop of one running gateway (``edge.gateway.Gateway``)."""

    def __init__(self, gateway) -> None:
        self.gateway = gateway
        self.started = time.monotonic()
        self.ring = log_ring()
        self.clock_offset: int | None = None
        self.soon = asyncio.Event()  # send the next heartbeat now (a configuration was just tried)
        meta = gateway.store.read_sync(lambda db: (db.get_meta("heartbeat_n", "0"), db.get_meta("config_last")))
        self.number = int(meta[0] or 0)
        self.last: dict[str, Any] | None = json.loads(meta[1]) if meta[1] else None
        self.updates = UpdateAgent(gateway)  # software updates (edge/update.py, docs/updates.md)

    @property
    def config(self) -> GatewayConfig:
        return self.gateway.config

    def url(self, tail: str) -> str:
        return f"{self.config.cloud_url}/api/v1/gateways/{self.config.gateway_id}/{tail}"

    async def post(self, tail: str, document: dict[str, Any]) -> dict[str, Any]:
        body = canonical_bytes({"v": MESSAGE_VERSION, "gateway": self.config.gateway_id,
                                "sent": stamp(self.gateway.clock.now()), **document})
        session = await self.gateway.uplink.session()
        async with session.post(self.url(tail), data=body, headers={
                "Content-Type": "application/json", "X-Balans-Signature": b64(self.gateway.key.sign(body))}) as response:
            try:
                answer = await response.json(content_type=None)
            except (ValueError, aiohttp.ContentTypeError):
                answer = {}
            if response.status >= 400:
                raise RemoteRefused(response.status, answer if isinstance(answer, dict) else {})
            return answer

    async def health(self) -> dict[str, Any]:
        gateway = self.gateway
        backlog = await gateway.store.read(GatewayDatabase.pending_batch_count)
        document = {
            "backlog": backlog,
            "disk_free_bytes": shutil.disk_usage(self.config.database.parent).free,
            "meters_answering": sum(1 for c in gateway.meters.values() if c.online),
            "meters_configured": len(gateway.meters),
            "software_version": software_version(),
            "uptime_s": int(time.monotonic() - self.started),
            "clock_state": gateway.clock_state,
            "poll_seconds": self.config.poll_seconds,
            "uplink_refused": gateway.refused is not None,
        }
        if self.clock_offset is not None:
            document["clock_offset_s"] = self.clock_offset
        return document

    async def heartbeat(self) -> dict[str, Any]:
        self.number += 1
        await self.gateway.store.write(lambda db: db.set_meta("heartbeat_n", self.number))
        document: dict[str, Any] = {"n": self.number, "health": await self.health(),
                                    "config": {"version": self.config.config_version, "last": self.last},
                                    "update": self.updates.report()}
        if self.config.config_version == 0:  # the installer's file: the cloud learns what it may then author
            document["authored"] = authored(self.config)
        answer = await self.post("heartbeat", document)
        self.clock_offset = answer.get("clock_offset_s")
        for request in answer.get("requests") or []:
            await self.answer(request)
        offered = (answer.get("config") or {}).get("version")
        tried = (self.last or {}).get("version")
        if isinstance(offered, int) and offered > self.config.config_version and offered != tried:
            await self.update_config(offered)
        if await self.updates.after_heartbeat(answer):
            self.soon.set()
        return answer

    async def loop(self) -> None:
        log.info("heartbeat to %s every %d s (configuration version %d)", self.config.cloud_url,
                 self.config.heartbeat_seconds, self.config.config_version)
        while True:
            try:
                await self.heartbeat()
            except (TimeoutError, aiohttp.ClientError, ConnectionError, RemoteRefused) as exc:
                log.warning("heartbeat: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.soon.wait(), self.config.heartbeat_seconds)
            self.soon.clear()

    # --- diagnostics -----------------------------------------------------------------------------------------
    async def answer(self, request: dict[str, Any]) -> None:
        kind, ok = request.get("kind"), True
        if kind == "log":
            lines = max(1, min(int((request.get("params") or {}).get("lines", 100)), MAX_LOG_LINES))
            result: dict[str, Any] = {"lines": list(self.ring.lines)[-lines:]}
        elif kind == "reread":
            polled = await self.gateway.poll_cycle()
            await self.gateway.seal()
            result = {"at": stamp(polled.at), "values": polled.values, "failed": polled.failed,
                      "answered": len(polled.values), "configured": len(self.gateway.meters)}
            ok = bool(polled.values)
        else:
            result, ok = {"message": f"unknown request kind {kind!r}"}, False
        log.info("answered request %s (%s)", request.get("id"), kind)
        await self.post("results", {"request": request.get("id"), "ok": ok, "result": result})

    # --- site configuration ----------------------------------------------------------------------------------
    async def update_config(self, version: int) -> None:
        answer = await self.post("config", {"version": version})
        try:
            body, signature = unb64(str(answer.get("body", "")), "body"), unb64(str(answer.get("signature", "")))
            verify_signature(load_public_key(self.config.org_key_path.read_text(encoding="ascii")), body, signature)
            document = check_config(orjson.loads(body))
            if document["version"] != version or document["site"] != self.config.site:
                raise RemoteError(f"is version {document['version']} of {document['site']}, not {version} of "
                                  f"{self.config.site}", "version")
        except (OSError, BatchError, RemoteError, orjson.JSONDecodeError) as exc:
            reason = "signature does not match the organisation's key" if getattr(exc, "code", "") == "bad_signature" \
                else str(exc)
            log.error("site configuration %s refused: %s", version, reason)
            await self.remember({"version": version, "status": "refused", "reason": reason})
            return
        await self.apply(version, document)

    async def apply(self, version: int, document: dict[str, Any]) -> None:
        path = self.config.source
        previous = path.read_text(encoding="utf-8")
        write_atomically(path.with_name(path.name + ".previous"), previous)
        write_atomically(path, merged_toml(previous, document))
        try:
            new = load_config(path)
        except ConfigError as exc:
            write_atomically(path, previous)
            log.error("site configuration %s cannot run, rolled back: %s", version, exc)
            await self.remember({"version": version, "status": "rolled_back", "reason": str(exc)})
            return
        async with self.gateway.polling:  # polls wait; the old buses let go of their ports for the trial
            for bus in self.gateway.buses.values():
                bus.close()  # reopened on their next read if the new configuration is rolled back
            buses, answered = await trial_read(new)
            if answered:
                self.gateway.reconfigure(new, buses)
        if not answered:
            for bus in buses.values():
                bus.close()
            write_atomically(path, previous)
            reason = f"no meter answered within {TRIAL_SECONDS:.0f} s ({len(new.meters)} configured)"
            log.error("site configuration %s rolled back: %s", version, reason)
            await self.remember({"version": version, "status": "rolled_back", "reason": reason})
            return
        log.info("site configuration %s in force (%d of %d meters answered)", version, len(answered), len(new.meters))
        await self.remember({"version": version, "status": "applied", "answered": len(answered),
                             "configured": len(new.meters)})

    async def remember(self, last: dict[str, Any]) -> None:
        self.last = last
        await self.gateway.store.write(lambda db: db.set_meta("config_last", json.dumps(last)))
        self.soon.set()
