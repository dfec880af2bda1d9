"""A register file's fate, row by row, and its application: all of it or nothing.

``plan`` reads every row against the organisation's register as it is now and says what would happen to it:
*new* (an account not yet in the register), *changed* (with each value before → after), *unchanged*, or
*error* (each with its line and column). Nothing is written. ``apply`` plans again, inside the writer's
transaction, and writes only when no row has an error; every account it creates or changes gets an audit
entry with its values before → after.

What a cell means: a column the file has sets that value for every row (an empty cell clears it); a column the
file does not have leaves the value alone. One account may take several rows, one per meter; its own values
must then agree. A meter is found by its code at the row's site (the account's site when the row gives none):
a new code adds a subscriber's meter on that line, a known one moves to this account, line or profile.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from cloud.errors import ExplainedError
from cloud.models import Account, AuditLog, Line, Meter, Organisation, Site, utcnow
from cloud.register.fields import ACCOUNT_KEYS, BY_KEY, FieldError, as_text, clean
from cloud.register.table import Table

ACCOUNTS, METERS, AUDIT = Account.__table__, Meter.__table__, AuditLog.__table__


class ImportRefused(ExplainedError):
    """``apply`` found errors: nothing was written."""


@dataclass
class RowFate:
    line: int
    number: str
    status: str = "unchanged"  # new | changed | unchanged | error
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)  # key → (before, after), as text
    errors: list[tuple[str, ExplainedError]] = field(default_factory=list)  # (column's header, why)


@dataclass
class Plan:
    rows: list[RowFate]
    unknown_headers: list[str]
    # What apply writes: accounts to insert and to update (by id), meters to insert and to update.
    new_accounts: dict[str, dict] = field(default_factory=dict)
    account_updates: dict[int, dict] = field(default_factory=dict)
    new_meters: list[dict] = field(default_factory=list)
    meter_updates: dict[int, dict] = field(default_factory=dict)
    audits: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found = Counter(row.status for row in self.rows)
        return {status: found.get(status, 0) for status in ("new", "changed", "unchanged", "error")}

    @property
    def ok(self) -> bool:
        return not any(row.errors for row in self.rows)

    def outcome(self, first_errors: int = 50) -> dict:
        errors = [{"line": row.line, "column": column, "message": str(error), "code": error.code,
                   "params": {k: str(v) for k, v in error.params.items()}}
                  for row in self.rows for column, error in row.errors][:first_errors]
        return {"counts": self.counts(), "errors": errors, "unknown_headers": self.unknown_headers}


@dataclass
class _Register:
    """The organisation's register as it is, loaded once for the whole file."""

    sites: dict[str, int]
    site_codes: dict[int, str]
    lines: dict[tuple[int, str], int]
    line_numbers: dict[int, str]
    accounts: dict[str, dict]  # number → the account's row
    meters: dict[tuple[int, str], dict]  # (site id, code) → the meter's row


def _load(db: Session, org: Organisation) -> _Register:
    sites = dict(db.execute(select(Site.code, Site.id).where(Site.org_id == org.id)).all())
    lines = {(site_id, number): line_id for line_id, site_id, number in
             db.execute(select(Line.id, Line.site_id, Line.number).where(Line.org_id == org.id))}
    columns = [ACCOUNTS.c[name] for name in ("id", "number", "site_id", *ACCOUNT_KEYS)]
    accounts = {row["number"]: dict(row) for row in
                db.execute(select(*columns).where(ACCOUNTS.c.org_id == org.id)).mappings()}
    meters = {(row["site_id"], row["code"]): dict(row) for row in db.execute(
        select(METERS.c.id, METERS.c.site_id, METERS.c.code, METERS.c.role, METERS.c.line_id, METERS.c.profile,
               METERS.c.account_id).where(METERS.c.org_id == org.id, METERS.c.removed_at.is_(None))).mappings()}
    return _Register(sites, {v: k for k, v in sites.items()}, lines, {v: k[1] for k, v in lines.items()},
                     accounts, meters)


def plan(db: Session, org: Organisation, table: Table, actor: str = "") -> Plan:
    register = _load(db, org)
    result = Plan([], table.unknown_headers())
    columns = [(index, key, table.headers[index]) for index, key in enumerate(table.keys) if key is not None]
    header_of = {key: header for _, key, header in columns}
    present = set(header_of)
    account_keys = [k for k in ACCOUNT_KEYS if k in present]
    first_seen: dict[str, tuple[int, dict]] = {}  # account number → (line, its values in the file)
    ids_by_number = {number: row["id"] for number, row in register.accounts.items()}
    by_id = {row["id"]: row for row in register.accounts.values()}
    now = utcnow()
    new_defaults = {"site_id": None, "holder": "", "address": "", "email": "", "phone": "", "co_owners": "",
                    "telegram_chat_id": "", **_defaults()}
    for line, cells in table.rows:
        fate = RowFate(line, clean(cells[columns[0][0]] if columns else ""))
        values: dict[str, object] = {}
        for index, key, header in columns:
            try:
                values[key] = BY_KEY[key].parse(key, clean(cells[index] if index < len(cells) else ""))
            except FieldError as exc:
                fate.errors.append((header, exc))
        number = values.get("number") or fate.number
        fate.number = str(number)
        result.rows.append(fate)
        existing = register.accounts.get(number)
        site_id = existing["site_id"] if existing else None
        if values.get("site"):
            site_id = register.sites.get(values["site"])
            if site_id is None:
                _refused_row(fate, header_of["site"], f"site {values['site']!r} is not this organisation's",
                        "err_reg_site", site=values["site"])
        if fate.errors:
            fate.status = "error"
            continue
        mine = {k: values[k] for k in account_keys}
        if "site" in present:
            mine["site_id"] = site_id
        earlier = first_seen.get(number)
        if earlier is not None:
            differing = [k for k in mine if as_text(mine[k]) != as_text(earlier[1][k])]
            if differing:
                key = differing[0]
                _refused_row(fate, header_of.get(key, header_of.get("site", "")),
                        f"account {number} has other values on line {earlier[0]}", "err_reg_conflict",
                        account=number, line=earlier[0])
                continue
        else:
            first_seen[number] = (line, mine)
            if existing is None:
                new = {"org_id": org.id, "number": number, "site_id": site_id, **new_defaults, **mine}
                result.new_accounts[number] = new
                fate.status = "new"
                fate.changes = {_shown(k): ("", _site_text(register, v) if k == "site_id" else as_text(v))
                                for k, v in mine.items() if as_text(v) != as_text(new_defaults.get(k, ""))}
            else:
                before = {k: existing[k] for k in mine}
                changed = {k: v for k, v in mine.items() if as_text(v) != as_text(before[k])}
                if changed:
                    result.account_updates[existing["id"]] = changed
                    fate.status = "changed"
                    fate.changes = {_shown(k): (_site_text(register, before[k]) if k == "site_id"
                                                else as_text(before[k]),
                                                _site_text(register, v) if k == "site_id" else as_text(v))
                                    for k, v in changed.items()}
        if values.get("meter"):
            _plan_meter(result, register, fate, values, header_of, site_id, number,
                        ids_by_number, by_id)
        if fate.errors:
            fate.status = "error"
    if result.ok:
        result.audits = [_audit(org, actor, "account.create" if fate.status == "new" else "account.update",
                                fate.number, fate.changes, now)
                         for fate in result.rows if fate.status in ("new", "changed") and fate.changes]
    return result


def _plan_meter(result: Plan, register: _Register, fate: RowFate, values: dict, header_of: dict,
                site_id: int | None, number: str, ids_by_number: dict, by_id: dict) -> None:
    code = values["meter"]
    if site_id is None:
        _refused_row(fate, header_of["meter"], f"meter {code}: the row names no site (ТП) and the account has none",
                "err_reg_meter_site", meter=code)
        return
    line_id = None
    if values.get("line"):
        line_id = register.lines.get((site_id, values["line"]))
        if line_id is None:
            _refused_row(fate, header_of["line"], f"line {values['line']} is not at site {register.site_codes[site_id]}",
                    "err_reg_line", line=values["line"], site=register.site_codes[site_id])
            return
    meter = register.meters.get((site_id, code))
    account_id = ids_by_number.get(number)  # None: the account is new, its id comes at apply
    if meter is None:
        new = {"org_id": None, "site_id": site_id, "code": code, "role": "subscriber",
               "line_id": line_id, "profile": values.get("profile", "") or "", "account_id": account_id,
               "_number": number, "installed_at": None, "removed_at": None}
        result.new_meters.append(new)
        register.meters[(site_id, code)] = {**new, "id": None}
        fate.changes[f"meter {code}"] = ("", "new")
        if fate.status == "unchanged":
            fate.status = "changed"
        return
    if meter.get("id") is None:  # added by an earlier row of this file
        if meter["_number"] != number:
            _refused_row(fate, header_of["meter"], f"meter {code} is given to two accounts", "err_reg_meter_twice",
                    meter=code)
        return
    if meter["role"] != "subscriber":
        _refused_row(fate, header_of["meter"], f"meter {code} is the site's {meter['role']} meter, not a subscriber's",
                "err_reg_meter_role", meter=code, role=meter["role"])
        return
    changes: dict[str, object] = {}
    if meter["account_id"] != account_id or account_id is None:
        changes["account_id"] = account_id
        changes["_number"] = number
    if "line" in header_of and meter["line_id"] != line_id:
        changes["line_id"] = line_id
    if "profile" in header_of and (meter["profile"] or "") != (values.get("profile") or ""):
        changes["profile"] = values.get("profile") or ""
    if not changes:
        return
    owner = by_id.get(meter["account_id"], {}).get("number", "")
    shown = {}
    if "_number" in changes:
        shown[f"meter {code}"] = (owner, number)
    if "line_id" in changes:
        shown[f"meter {code} line"] = (register.line_numbers.get(meter["line_id"], ""), values.get("line") or "")
    if "profile" in changes:
        shown[f"meter {code} profile"] = (meter["profile"] or "", changes["profile"])
    result.meter_updates[meter["id"]] = changes
    fate.changes.update(shown)
    if fate.status == "unchanged":
        fate.status = "changed"


def apply(db: Session, org: Organisation, table: Table, actor: str) -> Plan:
    """Plan ``table`` against the register as it is now and write it, or raise ``ImportRefused`` with nothing
    written. The caller commits (and holds the app's write lock)."""
    found = plan(db, org, table, actor)
    if not found.ok:
        counts = found.counts()
        raise ImportRefused(f"{counts['error']} rows have errors: nothing was imported", "err_import_refused",
                            rows=counts["error"])
    if found.new_accounts:
        db.execute(insert(ACCOUNTS), list(found.new_accounts.values()))
    ids = dict(db.execute(select(ACCOUNTS.c.number, ACCOUNTS.c.id).where(ACCOUNTS.c.org_id == org.id)).all())
    for columns, rows in _grouped(found.account_updates).items():
        db.execute(update(ACCOUNTS).where(ACCOUNTS.c.id == bindparam("_id"))
                   .values({c: bindparam(c) for c in columns}), rows)
    if found.new_meters:
        db.execute(insert(METERS), [{**{k: v for k, v in m.items() if k != "_number"}, "org_id": org.id,
                                     "account_id": ids[m["_number"]]} for m in found.new_meters])
    meter_rows = {meter_id: {**{k: v for k, v in changes.items() if k != "_number"},
                             **({"account_id": ids[changes["_number"]]} if "_number" in changes else {})}
                  for meter_id, changes in found.meter_updates.items()}
    for columns, rows in _grouped(meter_rows).items():
        db.execute(update(METERS).where(METERS.c.id == bindparam("_id"))
                   .values({c: bindparam(c) for c in columns}), rows)
    if found.audits:
        db.execute(insert(AUDIT), found.audits)
    return found


def _grouped(updates: dict[int, dict]) -> dict[tuple[str, ...], list[dict]]:
    """Updates grouped by the columns they set: one executemany per shape."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for row_id, values in updates.items():
        groups.setdefault(tuple(sorted(values)), []).append({"_id": row_id, **values})
    return groups


def _refused_row(fate: RowFate, column: str, message: str, code: str, **params) -> None:
    fate.errors.append((column, ExplainedError(message, code, **params)))
    fate.status = "error"


def _defaults() -> dict:
    return {"benefit_pct": Decimal(0), "benefit_norm_kwh": Decimal(0), "benefit_norm_m2": Decimal(0),
            "subsidy_uah": Decimal(0), "reminders_opt_out": False, "category": "household", "heated_area_m2": None,
            "common_coefficient": Decimal(1)}


def _shown(key: str) -> str:
    return "site" if key == "site_id" else key


def _site_text(register: _Register, site_id: int | None) -> str:
    return register.site_codes.get(site_id, "") if site_id is not None else ""


def _audit(org: Organisation, actor: str, action: str, number: str, changes: dict, now) -> dict:
    return {"org_id": org.id, "actor": actor or "import", "action": action, "entity": f"account:{number}",
            "before": {k: b for k, (b, _) in changes.items()}, "after": {k: a for k, (_, a) in changes.items()},
            "at": now}
