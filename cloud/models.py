"""The cloud's data model (SQLAlchemy 2): organisations and their sites, meters, accounts, people,
gateways and what they sent, and the money side — tariffs, invoices and the ledger.

Every row that belongs to an organisation carries ``org_id`` so each query can be scoped.
Times are stored as naive UTC. Money is Numeric(14, 2) (hryvnias with kopecks).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cloud.clock import utcnow  # the column default; imported from here by many

MONEY = Numeric(14, 2)
ENERGY = Numeric(14, 3)  # kWh to the Wh


class Base(DeclarativeBase):
    pass


class Organisation(Base):
    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(30))  # cooperative | osbb | cottage_town | supplier | heat
    edrpou: Mapped[str] = mapped_column(String(10), default="")
    iban: Mapped[str] = mapped_column(String(34), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    last_invoice_number: Mapped[int] = mapped_column(Integer, default=0)
    net_billing: Mapped[str] = mapped_column(String(10), default="netting")  # netting | money (solar export)
    export_price: Mapped[Decimal] = mapped_column(Numeric(12, 5), default=Decimal(0))  # UAH/kWh for "money"
    liqpay_public_key: Mapped[str] = mapped_column(String(120), default="")
    liqpay_private_key: Mapped[str] = mapped_column(String(120), default="")
    # The organisation's own words printed under each invoice's total (where to pay, whom to call); "" for none.
    invoice_note: Mapped[str] = mapped_column(String(500), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    # operator | org_admin | manager | accountant | clerk | installer | resident
    role: Mapped[str] = mapped_column(String(20))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    lang: Mapped[str] = mapped_column(String(2), default="uk")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Site(Base):
    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("org_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    code: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(200), default="")
    # Loss % at which a line is flagged elevated / suspected theft (shared/balance.py).
    elevated_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(3))
    theft_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(10))
    # Heat: the part of the building meter's heat that is common use (МЗК, in-building systems), 0–1.
    heat_common_share: Mapped[Decimal] = mapped_column(Numeric(5, 4), default=Decimal(0), server_default="0")
    lines: Mapped[list[Line]] = relationship(back_populates="site", order_by="Line.number")


class Line(Base):
    __tablename__ = "lines"
    __table_args__ = (UniqueConstraint("site_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    number: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200), default="")
    site: Mapped[Site] = relationship(back_populates="lines")


class Account(Base):
    """Особовий рахунок: one subscriber's account with its holder and address."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("org_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    number: Mapped[str] = mapped_column(String(30))
    holder: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(20), default="", server_default="")  # +380XXXXXXXXX
    co_owners: Mapped[str] = mapped_column(String(300), default="", server_default="")  # співвласники
    telegram_chat_id: Mapped[str] = mapped_column(String(40), default="")
    benefit_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0))  # пільга, % within the norm
    benefit_norm_kwh: Mapped[Decimal] = mapped_column(Numeric(10, 3), default=Decimal(0))  # per month
    benefit_norm_m2: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=Decimal(0))  # heat: social norm of area
    subsidy_uah: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))  # субсидія per month
    reminders_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    category: Mapped[str] = mapped_column(String(30), default="household")  # the supplier's customer segment
    heated_area_m2: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))  # heat: опалювана площа
    common_coefficient: Mapped[Decimal] = mapped_column(Numeric(4, 2), default=Decimal(1), server_default="1")
    # The code printed on the invoice with which a resident links their sign-in to this account (None: not made).
    invite_code: Mapped[str | None] = mapped_column(String(16), unique=True)


class Meter(Base):
    __tablename__ = "meters"
    __table_args__ = (UniqueConstraint("site_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    code: Mapped[str] = mapped_column(String(60))  # the gateway's meter id (serial)
    profile: Mapped[str] = mapped_column(String(60), default="")
    role: Mapped[str] = mapped_column(String(20))  # station_input | feeder | subscriber
    line_id: Mapped[int | None] = mapped_column(ForeignKey("lines.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    installed_at: Mapped[datetime | None] = mapped_column(DateTime)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime)


class Gateway(Base):
    __tablename__ = "gateways"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    code: Mapped[str] = mapped_column(String(60), unique=True)
    public_key: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | revoked
    enrolled_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    chain_head: Mapped[str] = mapped_column(String(64), default="0" * 64)


class GatewayKey(Base):
    """Every public key a gateway has had: old batches stay verifiable after a rotation."""

    __tablename__ = "gateway_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"), index=True)
    public_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime)


class EnrolmentToken(Base):
    __tablename__ = "enrolment_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateways.id"))


class Batch(Base):
    """A batch exactly as received: raw bytes and detached signature, kept as evidence."""

    __tablename__ = "batches"
    # (gateway, received_at): a gateway's newest batches, for its health page.
    __table_args__ = (UniqueConstraint("gateway_id", "seq"), Index("ix_batches_gateway_received", "gateway_id", "received_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"))
    key_id: Mapped[int | None] = mapped_column(ForeignKey("gateway_keys.id"))  # the key that verified it
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    prev: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    config_version: Mapped[int | None] = mapped_column(Integer)  # the site configuration in force when sealed


class Reading(Base):
    __tablename__ = "readings"
    __table_args__ = (UniqueConstraint("meter_id", "ts"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    ts: Mapped[datetime] = mapped_column(DateTime)
    values: Mapped[dict] = mapped_column(JSON)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"))  # None: entered by a person
    source: Mapped[str] = mapped_column(String(10), default="gateway", server_default="gateway")  # | office | resident


class IntervalEnergy(Base):
    __tablename__ = "interval_energy"
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    start: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    # Integer Wh: SQL sums stay exact on every database (SQLite has no decimal type).
    imp_wh: Mapped[int] = mapped_column(BigInteger)
    exp_wh: Mapped[int] = mapped_column(BigInteger)
    flag: Mapped[str] = mapped_column(String(12))
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))


Index("interval_energy_start", IntervalEnergy.start)


class DailyEnergy(Base):
    """Σ of a meter's interval energy per Kyiv calendar day (23, 24 or 25 hours), kept current as intervals are
    stored (cloud/ingest/chain.py) and rebuilt by ``balans cloud rebuild-daily``: the dashboards' months and
    years are sums of these rows, never a scan of a year of quarter-hours."""

    __tablename__ = "daily_energy"
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # the Kyiv date
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    imp_wh: Mapped[int] = mapped_column(BigInteger, default=0)
    exp_wh: Mapped[int] = mapped_column(BigInteger, default=0)
    intervals: Mapped[int] = mapped_column(Integer, default=0)  # intervals stored (measured or estimated)
    estimated: Mapped[int] = mapped_column(Integer, default=0)  # of which estimated by the gateway


Index("daily_energy_day", DailyEnergy.day)


class Event(Base):
    __tablename__ = "events"
    # A meter's newest events (the voltage page, the site's events), a gateway's (its health).
    __table_args__ = (Index("ix_events_meter_ts", "meter_id", "ts"), Index("ix_events_gateway_ts", "gateway_id", "ts"))
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateways.id"))
    meter_id: Mapped[int | None] = mapped_column(ForeignKey("meters.id"))
    ts: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"))
    # Refusals anyone can cause are one event per gateway and ten minutes (cloud/ingest/refusals.py): how
    # many, and when the last one came.
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_ts: Mapped[datetime | None] = mapped_column(DateTime)
    # A person has seen it (the events page's «acknowledge»), with what they said about it.
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime)
    acknowledged_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    note: Mapped[str] = mapped_column(String(500), default="", server_default="")


class Tariff(Base):
    __tablename__ = "tariffs"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # cooperative | supplier | heat | fixed
    purchase_price: Mapped[Decimal] = mapped_column(Numeric(12, 5))
    coefficient: Mapped[Decimal] = mapped_column(Numeric(8, 4), default=Decimal(1))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    segment: Mapped[str] = mapped_column(String(30), default="", server_default="")  # supplier: customer segment
    zones: Mapped[dict | None] = mapped_column(JSON)  # time-of-use zone → coefficient on the price
    monthly_fee: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0), server_default="0")  # per account
    fee_name: Mapped[str] = mapped_column(String(120), default="", server_default="")


class HeatingSeason(Base):
    """Опалювальний період as the local council set it: heat is billed only inside it."""

    __tablename__ = "heating_seasons"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    starts: Mapped[date] = mapped_column(Date)
    ends: Mapped[date | None] = mapped_column(Date)  # inclusive; None: not yet ended


class BillingRun(Base):
    __tablename__ = "billing_runs"
    __table_args__ = (UniqueConstraint("site_id", "period"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    period: Mapped[str] = mapped_column(String(7))
    status: Mapped[str] = mapped_column(String(10))  # draft | issued
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    issued_at: Mapped[datetime | None] = mapped_column(DateTime)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)


class Invoice(Base):
    """An invoice; once issued it never changes — corrections are new ledger entries later."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("org_id", "number"), UniqueConstraint("run_id", "account_id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("billing_runs.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    number: Mapped[str | None] = mapped_column(String(30))  # assigned at issue, no gaps
    status: Mapped[str] = mapped_column(String(12))  # draft | issued
    issued_at: Mapped[datetime | None] = mapped_column(DateTime)
    due_date: Mapped[date | None] = mapped_column(Date)
    quantity_kwh: Mapped[Decimal] = mapped_column(Numeric(14, 4))  # kWh, or Gcal to 0.0001 for heat
    start_reading: Mapped[Decimal | None] = mapped_column(ENERGY)
    end_reading: Mapped[Decimal | None] = mapped_column(ENERGY)
    total: Mapped[Decimal] = mapped_column(MONEY)
    opening_balance: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    lines: Mapped[list] = mapped_column(JSON)
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)  # no reading for the period: an estimate
    meters: Mapped[list | None] = mapped_column(JSON)  # each meter's segment: code, from, to, readings, quantity


class LedgerEntry(Base):
    """One movement on an account; the account's balance is always the sum of its entries.

    Positive = the subscriber owes more (a charge); negative = money in or a credit.
    """

    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # charge | payment | adjustment | benefit | subsidy
    amount: Mapped[Decimal] = mapped_column(MONEY)
    period: Mapped[str | None] = mapped_column(String(7))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    corrects_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))  # the invoice it corrects
    memo: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Correction(Base):
    """Перерахунок the accountant recorded against an issued invoice: it goes onto the account's next invoice
    as its own line (and ledger entry) referring to the original — the original never changes."""

    __tablename__ = "corrections"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))  # the corrected (issued) invoice
    quantity: Mapped[Decimal] = mapped_column(ENERGY, default=Decimal(0))  # kWh (or Gcal) added (+) or taken (−)
    amount: Mapped[Decimal] = mapped_column(MONEY)  # + charges more, − credits
    reason: Mapped[str] = mapped_column(String(300))
    actor: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    applied_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))  # set when issued


class AuditLog(Base):
    """Append-only: who changed what, when, before → after."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60))
    entity: Mapped[str] = mapped_column(String(120), default="")
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RegisterImport(Base):
    """A register file uploaded by the office: kept as sent, previewed, then applied whole or not at all."""

    __tablename__ = "register_imports"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(200))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(10), default="previewed")  # previewed | applied | refused
    outcome: Mapped[dict] = mapped_column(JSON, default=dict)  # counts by fate, and the first errors
    applied_at: Mapped[datetime | None] = mapped_column(DateTime)


class LoginAttempt(Base):
    """One try at the login form: the e-mail typed, the client's address, and how it ended — the shared store
    the throttle counts from, so that every gunicorn worker sees the same failures."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    email: Mapped[str] = mapped_column(String(200), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(10))  # success | failure | refused (while locked)


class LoginLockout(Base):
    """An account (an e-mail) or a client address refused sign-in until ``until``."""

    __tablename__ = "login_lockouts"
    __table_args__ = (Index("ix_login_lockouts_scope_key", "scope", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(10))  # account | address
    key: Mapped[str] = mapped_column(String(200))
    until: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class UserSession(Base):
    """A signed-in browser: the cookie carries a random token, this row its hash — logout ends the row, so a
    copied cookie stops working."""

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    authenticated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)  # the password last typed
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    address: Mapped[str] = mapped_column(String(64), default="")


class OutboxMessage(Base):
    """A message waiting to be sent (e-mail now; other channels later), with its attempts."""

    __tablename__ = "outbox_messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # invoice | reminder
    channel: Mapped[str] = mapped_column(String(10), default="email")  # email | telegram
    key: Mapped[str | None] = mapped_column(String(120), unique=True)  # idempotency: one message per key
    to: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    attachment_name: Mapped[str] = mapped_column(String(120), default="")
    attachment: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(10))  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)  # after a failure: not tried again before
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)


class StatementImport(Base):
    """One imported bank statement file (what came in, and what it did)."""

    __tablename__ = "statement_imports"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)


class Payment(Base):
    """Money in: from a statement, a card payment or the cashier; matched to an account or waiting in the queue."""

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("org_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    key: Mapped[str] = mapped_column(String(120))  # dedupe: the bank's reference or a hash of the transaction
    channel: Mapped[str] = mapped_column(String(10))  # bank | card | cash
    booked: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    payer: Mapped[str] = mapped_column(String(200), default="")
    payer_iban: Mapped[str] = mapped_column(String(34), default="")
    purpose: Mapped[str] = mapped_column(String(500), default="")
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    matched_by: Mapped[str] = mapped_column(String(20))  # purpose | payer_iban | hand | none | ambiguous
    statement_id: Mapped[int | None] = mapped_column(ForeignKey("statement_imports.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    end_to_end_id: Mapped[str] = mapped_column(String(35), default="", server_default="")  # the payer's own id


# A refund or reversal finds its payment by the payer's IBAN; the queue finds an IBAN's payments.
Index("payments_payer_iban", Payment.org_id, Payment.payer_iban)


class PaymentReversal(Base):
    """Money that went back: a bank reversal (camt.053 RvslInd), a refund to the payer (a debit to the payer's
    IBAN for the payment's amount) or a LiqPay «reversed». Undoes one whole payment, at most once — or, a refund,
    part of one (an overpayment sent back), several times up to the payment's amount (cloud/payments/reversals.py).

    ``payment_id`` is None while Balans cannot tell which payment a bank reversal undoes (an accountant links it).
    """

    __tablename__ = "payment_reversals"
    __table_args__ = (UniqueConstraint("org_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    key: Mapped[str] = mapped_column(String(120))  # dedupe: the statement entry's key, or liqpay-reversed:<order>
    kind: Mapped[str] = mapped_column(String(10))  # reversal | refund | card | hand
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    booked: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    counterpart: Mapped[str] = mapped_column(String(200), default="")
    counterpart_iban: Mapped[str] = mapped_column(String(34), default="")
    purpose: Mapped[str] = mapped_column(String(500), default="")
    statement_id: Mapped[int | None] = mapped_column(ForeignKey("statement_imports.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PayerIban(Base):
    """A payer's IBAN remembered for an account once a payment from it was matched (by purpose or by hand)."""

    __tablename__ = "payer_ibans"
    __table_args__ = (UniqueConstraint("org_id", "iban"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    iban: Mapped[str] = mapped_column(String(34))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    # Assigned to two different accounts (a paying agent, a parent paying for two flats): never used to match.
    conflict: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class CardOrder(Base):
    """A card checkout started for an invoice: the callback's order id leads back to the account."""

    __tablename__ = "card_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    status: Mapped[str] = mapped_column(String(20), default="created")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ReminderRule(Base):
    """Remind a debtor when the debt is over ``min_debt`` UAH and ``min_days`` past due — once per period."""

    __tablename__ = "reminder_rules"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    min_debt: Mapped[Decimal] = mapped_column(MONEY)
    min_days: Mapped[int] = mapped_column(Integer)
    channels: Mapped[str] = mapped_column(String(40), default="email,telegram")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    text: Mapped[str] = mapped_column(Text, default="", server_default="")  # the message; "" for the standard one


class ApiToken(Base):
    """A key for the JSON API (`Authorization: Bearer …`), acting in one organisation with one role's rights.

    Only the SHA-256 of the token is stored; the token is shown once, when made."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))  # what it is for: «1С», «сайт кооперативу»
    role: Mapped[str] = mapped_column(String(20))  # the rights it acts with (cloud/permissions.py)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class UserToken(Base):
    """A one-time link mailed to a person: an invitation to set a first password, or a password reset."""

    __tablename__ = "user_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(10))  # invite | reset
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class Job(Base):
    """Work done in the background (a billing run, a mailing, a backup): queued by a person or the scheduler,
    taken by one worker, with progress a page can show."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_queue", "status", "run_after"),
                      UniqueConstraint("key", name="uq_jobs_key"))
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)  # None: the system's
    kind: Mapped[str] = mapped_column(String(40))  # billing.draft | billing.issue | outbox.send | backup | …
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    key: Mapped[str | None] = mapped_column(String(160))  # idempotency: a scheduled job queued once per slot
    status: Mapped[str] = mapped_column(String(10), default="queued")  # queued | running | done | failed
    run_after: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)  # progress: done of total steps
    total: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(String(300), default="")  # the step now, or what failed
    result: Mapped[dict | None] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(200), default="system")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    worker: Mapped[str] = mapped_column(String(80), default="")


class AlertRule(Base):
    """What an organisation wants to be told about (cloud/alerts/rules.py): a kind of condition with its thresholds,
    the people told and by which channels, and after how many minutes an unacknowledged alert also goes to the
    org admins."""

    __tablename__ = "alert_rules"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # line_elevated | line_theft | voltage | gateway_silent | meter_silent | counter_tamper | backlog
    kind: Mapped[str] = mapped_column(String(30))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))  # None: every site of the organisation
    params: Mapped[dict] = mapped_column(JSON, default=dict)  # the kind's thresholds
    recipients: Mapped[dict] = mapped_column(JSON, default=dict)  # {"users": [user ids], "roles": ["manager"]}
    channels: Mapped[str] = mapped_column(String(40), default="email")  # email,telegram
    escalate_minutes: Mapped[int] = mapped_column(Integer, default=0)  # 0: never escalated
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Alert(Base):
    """One raised condition of a rule about one subject (a line, a gateway, a meter), from when it opened until it
    cleared; ``open_key`` («rule:subject») is set only while open, so a rule raises one alert per subject."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    subject: Mapped[str] = mapped_column(String(120))  # line:TP-7/1 | gateway:gw-1 | meter:TP-7/M12
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    open_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    opened_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)  # the condition last found true
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime)
    acknowledged_by: Mapped[str] = mapped_column(String(200), default="")
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime)


class TelegramLink(Base):
    """A person's chat with the Telegram bot: a one-time code (SHA-256 only) shown on their page, sent to the bot
    as ``/start CODE``, links the chat (a resident's is copied to ``Account.telegram_chat_id`` too)."""

    __tablename__ = "telegram_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    chat_id: Mapped[str | None] = mapped_column(String(40), index=True)
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    code_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    linked_at: Mapped[datetime | None] = mapped_column(DateTime)


class LineIntervalEnergy(Base):
    """Σ of a site's energy per group of meters — the station input, a line's feeder, a line's subscribers
    (``line_id`` 0: none) — per quarter-hour (``step`` 15) and per Kyiv day (``step`` 1440, ``start`` its
    midnight), so a week's chart reads 672 × (1 + 2 × lines) rows and a year's 365 × …, never every meter's.
    Kept in the batch's transaction by cloud/dashboards/daily.py (``refresh_days``) and rebuilt by
    ``balans cloud rebuild-daily``. ``layout``: a digest of the site's meters, lines and roles when the row was
    summed; a row of another layout is stale and the series sum the meters' own rows instead."""

    __tablename__ = "line_interval_energy"
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)  # minutes: 15, or 1440 for a (23–25 h) Kyiv day
    start: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True)  # station_input | feeder | subscriber
    line_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0 for the station input
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    imp_wh: Mapped[int] = mapped_column(BigInteger, default=0)
    exp_wh: Mapped[int] = mapped_column(BigInteger, default=0)
    meters: Mapped[int] = mapped_column(Integer, default=0)  # meters with data in the bucket
    intervals: Mapped[int] = mapped_column(Integer, default=0)  # their quarter-hours stored
    layout: Mapped[int] = mapped_column(BigInteger, default=0)


class VoltageDay(Base):
    """One phase of one meter over a Kyiv day as EN 50160 counts it (shared/voltage_quality.py): its 10-minute
    means — how many, how many within Un ± 10 %, how many within +10 % / −15 %, the lowest and the highest. A
    week's compliance is the sum of seven rows. Computed from the readings' voltages when the voltage page first
    needs the day (cloud/operations/voltage.py); the rows of a meter and day are dropped when a batch brings that
    day new data. ``phase`` "" with ``windows`` 0: the day was looked at and had no voltage."""

    __tablename__ = "voltage_days"
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # the Kyiv date
    phase: Mapped[str] = mapped_column(String(2), primary_key=True)  # l1 | l2 | l3 | ""
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    windows: Mapped[int] = mapped_column(Integer, default=0)
    within_band: Mapped[int] = mapped_column(Integer, default=0)
    within_limits: Mapped[int] = mapped_column(Integer, default=0)
    minimum: Mapped[float | None] = mapped_column(Numeric(9, 4, asdecimal=False))  # volts
    maximum: Mapped[float | None] = mapped_column(Numeric(9, 4, asdecimal=False))


class GatewayHealth(Base):
    """The last signed heartbeat of a gateway (cloud/ingest/health.py, docs/remote.md): what it reported and when,
    the clock offset the cloud measured, and the site configuration version in force (0: the installer's file)."""

    __tablename__ = "gateway_health"
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime] = mapped_column(DateTime)  # the gateway's own clock
    clock_offset_s: Mapped[int] = mapped_column(Integer, default=0)  # gateway − cloud, at reception
    config_version: Mapped[int] = mapped_column(Integer, default=0)
    document: Mapped[dict] = mapped_column(JSON)  # the heartbeat as signed


class GatewayRequest(Base):
    """A diagnostic request queued for a gateway (``log`` | ``reread``), picked up in a heartbeat's answer and
    answered by a signed result: queued → sent → done | failed."""

    __tablename__ = "gateway_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120), default="")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    done_at: Mapped[datetime | None] = mapped_column(DateTime)
    result: Mapped[dict | None] = mapped_column(JSON)


class OrgSigningKey(Base):
    """An organisation's Ed25519 key for what the cloud tells its gateways (site configurations); the private key
    Fernet-encrypted with a key derived from the app's SECRET_KEY by HKDF (cloud/ingest/site_config.py)."""

    __tablename__ = "org_signing_keys"
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    public_key: Mapped[str] = mapped_column(Text)
    private_key: Mapped[str] = mapped_column(Text)  # Fernet token of the PKCS#8 PEM
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SiteConfigVersion(Base):
    """One version of a site's gateway configuration: the canonical JSON exactly as signed by the organisation."""

    __tablename__ = "site_config_versions"
    __table_args__ = (UniqueConstraint("site_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120), default="")


class SoftwareRelease(Base):
    """A gateway software version published to the signed release channel (cloud/updates, docs/updates.md): the
    package is a TUF target; its hash and length are also in the signed targets metadata the gateways verify."""

    __tablename__ = "software_releases"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(40), unique=True)
    target: Mapped[str] = mapped_column(String(200))  # the TUF target path (the wheel's file name)
    sha256: Mapped[str] = mapped_column(String(64))
    length: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    published_by: Mapped[str] = mapped_column(String(120), default="")


class SoftwareRollout(Base):
    """One decision of the operator on who runs which version; the newest row is in force. A gateway is offered
    ``version`` when it is named in ``gateways`` or its cohort (a hash of its code, 0…99) is below ``percent``."""

    __tablename__ = "software_rollouts"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(40))
    percent: Mapped[int] = mapped_column(Integer, default=0)
    gateways: Mapped[list | None] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_by: Mapped[str] = mapped_column(String(120), default="")


class GatewayUpdate(Base):
    """What became of one version on one gateway, as its heartbeat reported it: applied, rolled_back (the health
    check failed: the version is not offered to it again) or refused (the package or metadata did not verify)."""

    __tablename__ = "gateway_updates"
    __table_args__ = (UniqueConstraint("gateway_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"), index=True)
    version: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))  # applied | rolled_back | refused
    slot: Mapped[str] = mapped_column(String(4), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    reported_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class MonthlyEnergy(Base):
    """Σ of a meter's ``daily_energy`` per Kyiv calendar month (``month``: its first day), re-summed from the days
    in the same transaction that writes them (cloud/dashboards/daily.py): a year of a 5 000-meter station's
    balance reads 60 000 rows, not 1.8 million."""

    __tablename__ = "monthly_energy"
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    imp_wh: Mapped[int] = mapped_column(BigInteger, default=0)
    exp_wh: Mapped[int] = mapped_column(BigInteger, default=0)
    intervals: Mapped[int] = mapped_column(Integer, default=0)
    estimated: Mapped[int] = mapped_column(Integer, default=0)
