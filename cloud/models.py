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
    telegram_chat_id: Mapped[str] = mapped_column(String(40), default="")
    benefit_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0))  # пільга, % within the norm
    benefit_norm_kwh: Mapped[Decimal] = mapped_column(Numeric(10, 3), default=Decimal(0))  # per month
    benefit_norm_m2: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=Decimal(0))  # heat: social norm of area
    subsidy_uah: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))  # субсидія per month
    reminders_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    category: Mapped[str] = mapped_column(String(30), default="household")  # the supplier's customer segment
    heated_area_m2: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))  # heat: опалювана площа
    common_coefficient: Mapped[Decimal] = mapped_column(Numeric(4, 2), default=Decimal(1), server_default="1")


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
    __table_args__ = (UniqueConstraint("gateway_id", "seq"),)
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


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateways.id"))
    meter_id: Mapped[int | None] = mapped_column(ForeignKey("meters.id"))
    ts: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"))


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
