"""The commissioning check (пусконалагодження): is this gateway ready to be left alone? Every meter read and
plausible, the clock right, each line's balance computable, the cloud reachable, the first batch accepted.
Each failing item says what to do, in Ukrainian or English."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime

from edge.config import GatewayConfig
from edge.meter_reader import MeterUnavailable, open_bus
from edge.scan import implausible
from edge.store import open_database

VOLTAGE_LIMITS = (Decimal("180"), Decimal("260"))  # what a commissioned low-voltage line must show
CLOCK_LIMIT = timedelta(seconds=10)  # the cloud's Date header has a 1 s resolution; intervals are 15 min

# key → (Ukrainian, English); {…} filled from the item's facts.
TEXTS = {
    "meter": ("Лічильник {meter} читається", "Meter {meter} reads"),
    "meter_silent": ("Лічильник {meter} не відповідає ({error}). Перевірте живлення, дроти A/B, адресу {unit} і "
                     "швидкість шини, потім повторіть перевірку.",
                     "Meter {meter} does not answer ({error}). Check its power, the A/B wires, address {unit} and "
                     "the bus speed, then check again."),
    "values": ("Показники {meter} правдоподібні", "Values of {meter} are plausible"),
    "values_bad": ("Показники {meter} неправдоподібні: {error}. Перевірте профіль лічильника ({profile}) і "
                   "підключення фаз.",
                   "Values of {meter} are not plausible: {error}. Check the meter's profile ({profile}) and how "
                   "its phases are wired."),
    "clock": ("Годинник синхронізовано ({source})", "The clock is synced ({source})"),
    "clock_bad": ("Годинник шлюзу відстає або поспішає на {offset} с ({source}). Увімкніть NTP: "
                  "sudo timedatectl set-ntp true, і перевірте доступ до серверів часу.",
                  "The gateway's clock is {offset} s off ({source}). Turn NTP on: sudo timedatectl set-ntp true, "
                  "and check that time servers can be reached."),
    "clock_unknown": ("Неможливо перевірити годинник: немає ні хмари, ні timedatectl. Переконайтеся, що NTP "
                      "працює, і повторіть перевірку.",
                      "The clock cannot be checked: neither the cloud nor timedatectl answers. Make sure NTP runs "
                      "and check again."),
    "line": ("Баланс лінії {line} обчислюється", "The balance of line {line} can be computed"),
    "line_bad": ("Баланс лінії {line} не обчислюється: {error}. Додайте або підключіть лічильник фідера і "
                 "абонентів лінії в конфігурації шлюзу.",
                 "The balance of line {line} cannot be computed: {error}. Add or connect the line's feeder meter "
                 "and its subscribers in the gateway's configuration."),
    "cloud": ("Зв'язок із хмарою {url}", "Link to the cloud {url}"),
    "cloud_bad": ("Хмара {url} не відповідає ({error}). Перевірте мережу, DNS і адресу [cloud] url у "
                  "конфігурації.",
                  "The cloud at {url} does not answer ({error}). Check the network, DNS and [cloud] url in the "
                  "configuration."),
    "batch": ("Перший пакет прийнято хмарою ({sent} пакетів)", "The first batch was accepted ({sent} batches)"),
    "batch_none": ("Хмара ще не прийняла жодного пакета ({state}). Запустіть шлюз (sudo systemctl enable --now "
                   "balans-gateway), зареєструйте його (balans provision enroll) і дочекайтеся першого опитування.",
                   "The cloud has not accepted a batch yet ({state}). Start the gateway (sudo systemctl enable "
                   "--now balans-gateway), enrol it (balans provision enroll) and wait for its first poll."),
    "batch_refused": ("Хмара відхилила пакет: {error}. Перевірте реєстрацію шлюзу (balans provision enroll).",
                      "The cloud refused a batch: {error}. Check the gateway's enrolment (balans provision enroll)."),
}
LANGUAGES = ("uk", "en")


@dataclass(frozen=True)
class CheckItem:
    key: str  # meter | values | clock | line | cloud | batch
    ok: bool
    text: str  # the key into TEXTS: what was checked, or what failed and what to do
    facts: dict

    def say(self, lang: str = "uk") -> str:
        return TEXTS[self.text][LANGUAGES.index(lang)].format(**self.facts)

    def as_json(self, lang: str = "uk") -> dict:
        return {"check": self.key, "ok": self.ok, "message": self.say(lang), **self.facts}


@dataclass(frozen=True)
class Commissioning:
    gateway: str
    site: str
    at: datetime
    items: tuple[CheckItem, ...]

    @property
    def passed(self) -> bool:
        return all(item.ok for item in self.items)

    def as_json(self, lang: str = "uk") -> dict:
        return {"gateway": self.gateway, "site": self.site, "at": self.at.isoformat(), "passed": self.passed,
                "items": [item.as_json(lang) for item in self.items]}


async def read_meters(config: GatewayConfig) -> dict[str, dict[str, str] | str]:
    """Each meter's values, or why it did not answer; buses in parallel, one meter at a time on each."""
    profiles = config.profiles()
    found: dict[str, dict[str, str] | str] = {}

    async def one_bus(bus_config) -> None:
        bus = open_bus(bus_config, profiles)
        try:
            for meter in (m for m in config.meters if m.bus == bus_config.name):
                try:
                    found[meter.id] = await bus.read(meter)
                except MeterUnavailable as exc:
                    found[meter.id] = str(exc)
        finally:
            bus.close()

    await asyncio.gather(*(one_bus(b) for b in config.buses))
    return found


def value_problems(values: dict[str, str]) -> list[str]:
    problems = [p for p in (implausible(m, v) for m, v in values.items()) if p]
    for meaning, value in values.items():
        if meaning.startswith("voltage_l") and meaning[-1].isdigit():
            volts = Decimal(value)
            if volts != 0 and not VOLTAGE_LIMITS[0] <= volts <= VOLTAGE_LIMITS[1] and not implausible(meaning, value):
                problems.append(f"{meaning} = {value} V, outside {VOLTAGE_LIMITS[0]}–{VOLTAGE_LIMITS[1]} V")
    if "voltage_l1" in values and Decimal(values["voltage_l1"]) == 0:
        problems.append("voltage_l1 = 0 V")
    return problems


def cloud_probe(url: str, timeout: float = 5) -> tuple[datetime | None, str | None]:
    """(the cloud's Date header, None) when its OpenAPI document answers, else (None, why)."""
    try:
        with urllib.request.urlopen(f"{url}/api/v1/openapi.json", timeout=timeout) as response:
            date = response.headers.get("Date")
            return (parsedate_to_datetime(date) if date else datetime.now(UTC)), None
    except urllib.error.HTTPError as exc:
        return None, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return None, str(getattr(exc, "reason", exc))


def ntp_synchronized() -> bool | None:
    """systemd's NTPSynchronized, or None where there is no timedatectl (a container, another OS)."""
    if shutil.which("timedatectl") is None:
        return None
    try:
        answer = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                                text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = answer.stdout.strip()
    return {"yes": True, "no": False}.get(value) if answer.returncode == 0 else None


def check_site(config: GatewayConfig, clock_offset: float = 0.0, now: datetime | None = None) -> Commissioning:
    """Run every check. ``clock_offset`` (s) is added to the system clock: to rehearse a wrong clock."""
    items: list[CheckItem] = []
    readings = asyncio.run(read_meters(config))
    ok_meters = set()
    for meter in config.meters:
        got = readings.get(meter.id, "not read")
        facts = {"meter": meter.id, "unit": meter.unit, "profile": meter.profile}
        if isinstance(got, str):
            items.append(CheckItem("meter", False, "meter_silent", {**facts, "error": got}))
            continue
        items.append(CheckItem("meter", True, "meter", {**facts, "values": got}))
        problems = value_problems(got)
        items.append(CheckItem("values", not problems, "values_bad" if problems else "values",
                               {**facts, "error": "; ".join(problems)}))
        if not problems:
            ok_meters.add(meter.id)

    started = time.monotonic()
    cloud_date, cloud_error = cloud_probe(config.cloud_url)
    local = (now or datetime.now(UTC)) + timedelta(seconds=clock_offset + (time.monotonic() - started) / 2)
    ntp = ntp_synchronized()
    if cloud_date is not None:
        offset = (local - cloud_date).total_seconds()
        source = "Date header of the cloud" + (f"; NTP {'synced' if ntp else 'not synced'}" if ntp is not None else "")
        good = abs(offset) <= CLOCK_LIMIT.total_seconds()
        items.append(CheckItem("clock", good, "clock" if good else "clock_bad",
                               {"offset": f"{offset:+.0f}", "source": source}))
    elif ntp is not None:
        items.append(CheckItem("clock", ntp and clock_offset == 0, "clock" if ntp and clock_offset == 0 else "clock_bad",
                               {"offset": f"{clock_offset:+.0f}" if clock_offset else "?",
                                "source": "timedatectl NTPSynchronized"}))
    else:
        items.append(CheckItem("clock", False, "clock_unknown", {"source": "none"}))

    topology = config.topology()
    for line in topology.lines:
        head = line.feeder or (topology.input if len(topology.lines) == 1 else None)
        if head is None:
            error = "no feeder meter"
        elif not line.subscribers:
            error = "no subscriber meters"
        else:
            missing = [m for m in (head, *line.subscribers) if m not in ok_meters]
            error = f"not read: {', '.join(missing)}" if missing else ""
        items.append(CheckItem("line", not error, "line_bad" if error else "line", {"line": line.line, "error": error}))

    items.append(CheckItem("cloud", cloud_error is None, "cloud_bad" if cloud_error else "cloud",
                           {"url": config.cloud_url, "error": cloud_error or ""}))
    items.append(first_batch(config))
    return Commissioning(config.gateway_id, config.site, datetime.now(UTC), tuple(items))


def first_batch(config: GatewayConfig) -> CheckItem:
    """From the gateway's own outbox: has the cloud accepted a batch?"""
    if not config.database.exists():
        return CheckItem("batch", False, "batch_none", {"state": "the gateway has not run yet", "sent": 0})
    db = open_database(config.database)
    try:
        counts = db.batch_counts()
        refused = db.conn.execute("SELECT last_error FROM batches WHERE status = 'refused' ORDER BY seq LIMIT 1"
                                  ).fetchone()
    finally:
        db.close()
    if refused is not None:
        try:
            answer = json.loads(refused[0])
        except (TypeError, ValueError):
            answer = {"message": str(refused[0])}
        return CheckItem("batch", False, "batch_refused", {"error": answer.get("message", answer), "sent": 0})
    sent = counts.get("sent", 0)
    if sent:
        return CheckItem("batch", True, "batch", {"sent": sent})
    return CheckItem("batch", False, "batch_none", {"state": f"{counts.get('pending', 0)} batches waiting", "sent": 0})
