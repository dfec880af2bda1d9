"""From a bus scan to the gateway's configuration: roles and lines proposed from what the meters are and
count, then matched with the site's register in the cloud (each meter's code, account and line), then
written as the gateway's TOML, every guess marked for the installer to confirm."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

# Room for a counter to move between the office's last reading and the scan (kWh), beside 5 % of it.
COUNTER_MARGIN = Decimal("500")


class RegisterUnavailable(Exception):
    """The cloud's register could not be read (the message says why and what to do)."""


@dataclass
class ProposedMeter:
    id: str
    bus: str
    unit: int
    profile: str
    role: str
    line: str | None
    channel: int = 0
    account: str | None = None
    serial: str | None = None
    import_kwh: str = ""
    address: str = ""  # an IEC 62056-21 meter's address on its line
    counted: str = ""  # what it has counted, for the installer's eye: 1234.5 kWh, 7.43 Gcal
    source: str = "proposed"  # proposed (a guess from the scan) | register (matched in the cloud, by …)

    def toml(self) -> list[str]:
        out = ["[[meter]]"]
        if self.source == "proposed":
            out.append(f"# proposed by the scan ({self.counted or '?'}): confirm the id, role and line")
        else:
            out.append(f"# from the register in the cloud ({self.source})")
        out += [f"id = {_q(self.id)}", f"bus = {_q(self.bus)}", f"unit = {self.unit}",
                f"profile = {_q(self.profile)}", f"role = {_q(self.role)}"]
        if self.channel:
            out.append(f"channel = {self.channel}")
        if self.address:
            out.append(f"address = {_q(self.address)}")
        if self.line:
            out.append(f"line = {_q(self.line)}")
        if self.account:
            out.append(f"account = {_q(self.account)}")
        return out


@dataclass
class SiteProposal:
    buses: list[dict]
    meters: list[ProposedMeter]
    lines: dict[str, str] = field(default_factory=dict)
    site: str | None = None
    notes: list[str] = field(default_factory=list)  # what the installer should look at

    def as_json(self) -> dict:
        return {"site": self.site, "buses": self.buses, "lines": self.lines, "notes": self.notes,
                "meters": [m.__dict__ for m in self.meters]}


def _q(text: str) -> str:
    return json.dumps(str(text), ensure_ascii=False)  # a TOML basic string is a JSON string


def _kwh(meter: dict) -> Decimal:
    try:
        return Decimal(meter.get("values", {}).get("import_kwh", "0"))
    except InvalidOperation:
        return Decimal(0)


HEAT_LINE = "Квартирні теплолічильники"  # the flats' heat meters: a line only so that each has its place


def _gcal(meter: dict) -> Decimal:
    try:
        return Decimal(meter.get("values", {}).get("heat_gcal", "0"))
    except InvalidOperation:
        return Decimal(0)


def counted_text(meter: dict) -> str:
    """What the meter has counted, for the installer's eye: ``1234.5 kWh`` or ``7.43 Gcal``."""
    values = meter.get("values", {})
    if "heat_gcal" in values:
        return f"{values['heat_gcal']} Gcal"
    return f"{values['import_kwh']} kWh" if "import_kwh" in values else ""


def propose(scan: dict) -> SiteProposal:
    """Roles and lines from a scan's JSON: of the three-phase meters, the one that has counted the most is the
    station's input and the others are feeders, a line each; single-phase meters are subscribers, on the line
    of the feeder before them in unit-id order (installers address meters line by line). Only a guess: the
    register in the cloud, or the installer, has the last word.

    Heat meters (those that give heat_gcal) are not in the electricity balance: the one that has counted the most
    is proposed as the building's meter (heat_building), the others as the flats' meters on a line of their own."""
    found = [m for m in scan.get("meters", []) if m.get("profile")]
    heat = [m for m in found if "heat_gcal" in m.get("values", {})]
    found = [m for m in found if m not in heat]
    three = [m for m in found if m.get("phases", 1) == 3]
    head = max(three, key=_kwh) if three else None
    meters: list[ProposedMeter] = []
    lines: dict[str, str] = {}
    line_of: str | None = None
    notes: list[str] = []
    ordered = sorted(found, key=lambda m: (m["bus"], m["unit"], m.get("channel", 0)))
    for m in ordered:
        where = f"{m['bus']}-" if len({x["bus"] for x in found}) > 1 else ""
        ident = m.get("serial") or f"{where}u{m['unit']}" + (f"-{m['channel']}" if m.get("channel") else "")
        if m is head and (len(three) > 1 or len(three) == len(found)):
            role, line = "station_input", None
        elif m in three:
            line_of = str(len(lines) + 1)
            lines[line_of] = f"Лінія {line_of}"
            role, line = "feeder", line_of
        else:
            if line_of is None:
                line_of = "1"
                lines[line_of] = "Лінія 1"
                notes.append("no feeder meter before the first subscriber: line 1 has no feeder, its balance "
                             "cannot be computed until one is added")
            role, line = "subscriber", line_of
        meters.append(ProposedMeter(id=ident, bus=m["bus"], unit=m["unit"], profile=m["profile"], role=role,
                                    line=line, channel=m.get("channel", 0), serial=m.get("serial"),
                                    import_kwh=m.get("values", {}).get("import_kwh", ""), counted=counted_text(m),
                                    address=m.get("address", "")))
    building = max(heat, key=_gcal) if heat else None
    for m in sorted(heat, key=lambda m: (m["bus"], m["unit"])):
        ident = m.get("serial") or f"{m['bus']}-u{m['unit']}"
        role, line = "heat_building", None
        if m is not building:
            line = next((n for n, name in lines.items() if name == HEAT_LINE), None)
            if line is None:
                line = str(len(lines) + 1)
                lines[line] = HEAT_LINE
            role = "subscriber"
        meters.append(ProposedMeter(id=ident, bus=m["bus"], unit=m["unit"], profile=m["profile"], role=role,
                                    line=line, serial=m.get("serial"), counted=counted_text(m),
                                    address=m.get("address", "")))
    if len(three) > 1:
        notes.append(f"station input: {head['bus']} unit {head['unit']}, the three-phase meter that has counted "
                     "the most; the other three-phase meters are proposed as feeders, a line each")
    for m in scan.get("meters", []):
        if not m.get("profile"):
            notes.append(f"{m['bus']} unit {m['unit']} answers but matches no profile: add a profile "
                         "(docs/meters.md) or leave it out")
    return SiteProposal(buses=scan.get("buses", []), meters=meters, lines=lines, notes=notes)


def fetch_register(cloud_url: str, token: str, site: str | None = None, timeout: float = 15) -> list[dict]:
    """Every meter in service of the organisation's register (``GET /api/v1/register/meters``, every page)."""
    query = {"site": site} if site else {}
    url = cloud_url.rstrip("/") + "/api/v1/register/meters" + ("?" + urllib.parse.urlencode(query) if query else "")
    meters: list[dict] = []
    while url:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}",
                                                       "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                page = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise RegisterUnavailable(f"the cloud refused the API token ({exc.code}): ask the organisation's "
                                          "admin for a token that may view the register") from exc
            raise RegisterUnavailable(f"the cloud answered {exc.code} for {url}") from exc
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            raise RegisterUnavailable(f"cannot reach the cloud at {cloud_url}: {getattr(exc, 'reason', exc)}") from exc
        meters += [m for m in page.get("meters", []) if not m.get("removed_at")]
        following = page.get("next")
        url = urllib.parse.urljoin(url, following) if following else ""
    return meters


def _digits(text: str | None) -> str:
    return re.sub(r"\D", "", text or "").lstrip("0")


def merge_register(proposal: SiteProposal, register: list[dict]) -> SiteProposal:
    """Give each scanned meter its code, role, line and account from the register: by its serial number
    (the code, or the digits of the code, equal to it), else by its counter (at or a little past the
    office's last reading, one candidate only). What is not matched stays a proposal and is noted."""
    free = list(register)
    for meter in proposal.meters:
        match, how = None, ""
        if meter.serial:
            match = next((r for r in free if r["code"] == meter.serial
                          or (_digits(r["code"]) and _digits(r["code"]) == _digits(meter.serial))), None)
            how = f"serial {meter.serial}"
        if match is None and meter.import_kwh:
            scanned = Decimal(meter.import_kwh)
            near = []
            for r in free:
                last = (r.get("last_reading") or {}).get("value")
                try:
                    last = Decimal(last) if last else None
                except InvalidOperation:
                    last = None
                if last is not None and last <= scanned <= last * Decimal("1.05") + COUNTER_MARGIN \
                        and (not r.get("profile") or r["profile"] == meter.profile):
                    near.append(r)
            if len(near) == 1:
                match, how = near[0], f"counter {meter.import_kwh} kWh after the last reading"
        if match is None:
            continue
        free.remove(match)
        if match.get("profile") and match["profile"] != meter.profile:
            proposal.notes.append(f"{match['code']}: the register says profile {match['profile']}, the scan "
                                  f"found {meter.profile}; the scan's is written")
        meter.id, meter.role, meter.source = match["code"], match["role"], f"register, by {how}"
        meter.line = match.get("line") or None
        meter.account = match.get("account") or None
        proposal.site = proposal.site or match.get("site") or None
    used = {m.line for m in proposal.meters if m.line}
    for m in proposal.meters:  # the register's lines, with the proposal's names where they agree
        if m.line and m.line not in proposal.lines:
            proposal.lines[m.line] = f"Лінія {m.line}"
    proposal.lines = {n: name for n, name in sorted(proposal.lines.items(), key=lambda kv: _line_key(kv[0]))
                      if n in used}
    for r in free:
        proposal.notes.append(f"{r['code']} ({r['role']}, line {r.get('line') or '-'}) is in the register but "
                              "was not found on the bus: check its wiring and address, then scan again")
    for m in proposal.meters:
        if m.source == "proposed" and register:
            proposal.notes.append(f"{m.id}: not in the register; confirm its role and line, then add it there")
    return proposal


def _line_key(number: str) -> tuple[int, str]:
    return (int(number), "") if number.isdigit() else (10**9, number)


def gateway_toml(proposal: SiteProposal, *, gateway_id: str, site: str, cloud_url: str, poll_seconds: int = 900,
                 timeout: float = 0.3) -> str:
    """The gateway's configuration (docs/gateway.md) for the proposal."""
    out = ["# Written by `balans provision init` from a bus scan. Lines marked \"proposed\" are guesses:",
           "# confirm them before the first billing period (docs/installer.md).", "",
           "[gateway]", f"id = {_q(gateway_id)}", f"site = {_q(site)}", 'key = "gateway.key"',
           'database = "gateway.sqlite3"', f"poll_seconds = {poll_seconds}", "",
           "[cloud]", f"url = {_q(cloud_url)}", ""]
    for bus in proposal.buses:
        out += ["[[bus]]", f"name = {_q(bus['name'])}", f"kind = {_q(bus['kind'])}"]
        if bus["kind"] == "tcp":
            out += [f"host = {_q(bus['host'])}", f"port = {bus['port']}"]
        elif bus["kind"] == "rtu":
            out += [f"device = {_q(bus['device'])}", f"baudrate = {bus['baudrate']}",
                    f"parity = {_q(bus.get('parity', 'N'))}", f"stopbits = {bus.get('stopbits', 1)}"]
        else:  # IEC 62056-21, M-Bus: the line's own framing and answer time (edge/config.py) are the defaults
            out += [f"device = {_q(bus['device'])}", f"baudrate = {bus['baudrate']}", ""]
            continue
        out += [f"timeout = {timeout}", ""]
    for number, name in proposal.lines.items():
        out += ["[[line]]", f"number = {_q(number)}", f"name = {_q(name)}", ""]
    for meter in proposal.meters:
        out += [*meter.toml(), ""]
    return "\n".join(out)


def lines_and_meters_toml(proposal: SiteProposal) -> str:
    """Only the ``[[line]]`` and ``[[meter]]`` sections: what the scan proposes, to paste or to confirm."""
    out: list[str] = []
    for number, name in proposal.lines.items():
        out += ["[[line]]  # proposed", f"number = {_q(number)}", f"name = {_q(name)}", ""]
    for meter in proposal.meters:
        out += [*meter.toml(), ""]
    return "\n".join(out)
