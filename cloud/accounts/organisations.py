"""First setup and the office's basic records: organisations, sites, people, accounts, tariffs."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stdnum import iban as stdnum_iban

from cloud.accounts.auth import hash_password
from cloud.audit import audit
from cloud.models import Account, BillingRun, Organisation, Site, Tariff, User
from cloud.permissions import PEOPLE, Role

KINDS = ("cooperative", "osbb", "cottage_town", "supplier", "heat")
ROLES = tuple(role.value for role in PEOPLE)


class SetupError(ValueError):
    pass


def create_organisation(db: Session, name: str, kind: str, edrpou: str = "", iban: str = "",
                        address: str = "", actor: str = "cli") -> Organisation:
    if kind not in KINDS:
        raise SetupError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if edrpou and not (edrpou.isdigit() and len(edrpou) in (8, 10)):
        raise SetupError(f"ЄДРПОУ must be 8 digits (or РНОКПП 10), got {edrpou!r}")
    if iban and not valid_iban(iban):
        raise SetupError(f"IBAN {iban!r} is not valid (check digits)")
    org = Organisation(name=name, kind=kind, edrpou=edrpou, iban=iban.replace(" ", ""), address=address)
    db.add(org)
    db.flush()
    audit(db, org.id, actor, "organisation.create", f"org:{org.id}", None, {"name": name, "kind": kind})
    return org


def valid_iban(iban: str) -> bool:
    """Check digits and the country's own length and format (python-stdnum)."""
    return stdnum_iban.is_valid(iban.replace(" ", "").upper())


def create_site(db: Session, org: Organisation, code: str, name: str = "", elevated_pct: Decimal | None = None,
                theft_pct: Decimal | None = None, actor: str = "cli") -> Site:
    site = Site(org_id=org.id, code=code, name=name or code,
                elevated_pct=elevated_pct if elevated_pct is not None else Decimal(3),
                theft_pct=theft_pct if theft_pct is not None else Decimal(10))
    db.add(site)
    db.flush()
    audit(db, org.id, actor, "site.create", f"site:{code}", None, {"name": site.name})
    return site


def create_user(db: Session, email: str, password: str, role: str, org: Organisation | None,
                name: str = "", account: Account | None = None, lang: str = "uk", actor: str = "cli") -> User:
    if role not in ROLES:
        raise SetupError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if len(password) < 8:
        raise SetupError("password must be at least 8 characters")
    if role == Role.RESIDENT and account is None:
        raise SetupError("a resident must be linked to their account (--account)")
    if db.scalar(select(User).where(User.email == email.lower())) is not None:
        raise SetupError(f"user {email} already exists")
    user = User(email=email.lower(), password_hash=hash_password(password), role=role, name=name,
                org_id=org.id if org else None, account_id=account.id if account else None, lang=lang)
    db.add(user)
    db.flush()
    audit(db, org.id if org else None, actor, "user.create", f"user:{user.email}", None, {"role": role})
    return user


def upsert_account(db: Session, org: Organisation, number: str, holder: str = "", address: str = "",
                   site: Site | None = None, email: str = "") -> Account:
    account = db.scalar(select(Account).where(Account.org_id == org.id, Account.number == number))
    if account is None:
        account = Account(org_id=org.id, number=number)
        db.add(account)
    account.holder = holder or account.holder
    account.address = address or account.address
    account.email = email or account.email
    if site is not None:
        account.site_id = site.id
    db.flush()
    return account


ZONE_SETS = ({"day", "night"}, {"night", "half_peak", "peak"})


def billed_through(db: Session, org_id: int) -> date | None:
    """The last day of the latest period with an issued run: tariffs up to it are in invoices that never change."""
    period = db.scalar(select(func.max(BillingRun.period)).where(BillingRun.org_id == org_id,
                                                                BillingRun.status == "issued"))
    if period is None:
        return None
    year, month = (int(part) for part in period.split("-"))
    return date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


def set_tariff(db: Session, org: Organisation, kind: str, purchase_price: Decimal, coefficient: Decimal,
               valid_from: date, valid_to: date | None = None, actor: str = "cli", segment: str = "",
               zones: dict[str, Decimal] | None = None, monthly_fee: Decimal = Decimal(0),
               fee_name: str = "") -> Tariff:
    """A tariff: the price (purchase price × coefficient for a cooperative; sale price for a supplier, per
    customer ``segment`` and time-of-use ``zones``; UAH/Gcal for heat) and its fixed monthly fee. The tariff of
    the same kind and segment in force on ``valid_from`` is closed the day before; a start inside a period
    already issued is refused."""
    if kind not in ("cooperative", "supplier", "heat"):
        raise SetupError(f"tariff kind must be cooperative, supplier or heat, got {kind!r}")
    if purchase_price <= 0:
        raise SetupError(f"price must be positive, got {purchase_price}")
    if coefficient <= 0:
        raise SetupError(f"coefficient must be positive, got {coefficient}")
    if zones and (set(zones) not in ZONE_SETS or any(Decimal(k) <= 0 for k in zones.values())):
        raise SetupError(f"zones must be day/night or night/half_peak/peak with positive coefficients, got {zones}")
    if monthly_fee < 0:
        raise SetupError(f"monthly fee must not be negative, got {monthly_fee}")
    if valid_to is not None and valid_to < valid_from:
        raise SetupError(f"tariff ends {valid_to} before it starts {valid_from}")
    billed = billed_through(db, org.id)
    if billed is not None and valid_from <= billed:
        raise SetupError(f"invoices are issued up to {billed}: a new tariff can start on {billed + timedelta(days=1)} "
                         "at the earliest (issued invoices never change)")
    same = list(db.scalars(select(Tariff).where(Tariff.org_id == org.id, Tariff.kind == kind,
                                                Tariff.segment == segment).order_by(Tariff.valid_from)))
    later = [t for t in same if t.valid_from >= valid_from]
    if later:
        raise SetupError(f"a {kind} tariff already starts on {later[-1].valid_from}: a new one must start later")
    for previous in same:  # the one in force on the new one's first day ends the day before
        if previous.valid_to is None or previous.valid_to >= valid_from:
            closed = valid_from - timedelta(days=1)
            audit(db, org.id, actor, "tariff.close", f"tariff:{previous.id}",
                  {"to": str(previous.valid_to) if previous.valid_to else None}, {"to": str(closed)})
            previous.valid_to = closed
    tariff = Tariff(org_id=org.id, kind=kind, purchase_price=purchase_price, coefficient=coefficient,
                    valid_from=valid_from, valid_to=valid_to, segment=segment,
                    zones={z: str(k) for z, k in zones.items()} if zones else None, monthly_fee=monthly_fee,
                    fee_name=fee_name)
    db.add(tariff)
    db.flush()
    audit(db, org.id, actor, "tariff.create", f"tariff:{tariff.id}", None,
          {"kind": kind, "price": str(purchase_price), "coefficient": str(coefficient), "from": str(valid_from),
           "segment": segment, "zones": tariff.zones, "monthly_fee": str(monthly_fee)})
    return tariff
