"""An invoice as a document: everything printed on it, gathered from the database in one place.

The PDF and the HTML page render this same value, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.models import Account, BillingRun, Invoice, LedgerEntry, Meter, Organisation
from shared.calendar import kyiv_day
from shared.cost_sharing import COOPERATIVE_WORDING
from shared.nbu_qr import PaymentRequest, payment_url

MONTHS_UK = ("січень", "лютий", "березень", "квітень", "травень", "червень", "липень", "серпень", "вересень",
             "жовтень", "листопад", "грудень")


@dataclass(frozen=True)
class ChargeLine:
    description: str
    quantity: str
    unit: str
    price: str
    amount: Decimal


@dataclass(frozen=True)
class InvoiceDocument:
    number: str
    period: str
    issued: date | None
    due: date | None
    org_name: str
    org_code: str
    org_iban: str
    org_address: str
    cooperative: bool
    account: str
    holder: str
    address: str
    meter: str
    start_reading: Decimal | None
    end_reading: Decimal | None
    consumption_kwh: Decimal
    lines: tuple[ChargeLine, ...]
    opening_balance: Decimal
    paid_in_period: Decimal
    total: Decimal
    history: tuple[tuple[str, Decimal], ...] = field(default=())  # (YYYY-MM, kWh), oldest first
    unit: str = "кВт·год"  # Гкал for heat
    estimated: bool = False  # no reading for the period: the consumption is an estimate
    meters: tuple[dict, ...] = ()  # each meter's segment when there was more than one (a replacement)
    heat: bool = False
    note: str = ""  # the organisation's note as it read when the run was made (the run's summary keeps it)
    invite_code: str = ""  # the code a resident signs up to the cabinet with, when one was made

    @property
    def resource(self) -> str:
        return "теплову енергію" if self.heat else "електроенергію"

    @property
    def to_pay(self) -> Decimal:
        """The opening balance already nets every payment received before issue (the ledger's sum)."""
        return max(self.opening_balance + self.total, Decimal(0))

    @property
    def period_words(self) -> str:
        year, month = self.period.split("-")
        return f"{MONTHS_UK[int(month) - 1]} {year}"

    @property
    def purpose(self) -> str:
        what = "Внесок за електроенергію" if self.cooperative else f"Оплата за {self.resource}"
        return f"{what}, о/р {self.account}, {self.period_words}, рах. {self.number}"

    def payment_request(self) -> PaymentRequest:
        return PaymentRequest(recipient=self.org_name[:70], iban=self.org_iban,
                              amount=self.to_pay if self.to_pay > 0 else None, code=self.org_code,
                              purpose=self.purpose[:140])

    def payment_url(self) -> str:
        return payment_url(self.payment_request())


def segment_days(meter: dict) -> tuple[date, date]:
    """The Kyiv days a meter's segment covers (its bounds are stored as UTC instants): a meter removed at 01:00
    on the 15th counted on the 15th, one in service to the period's end up to its last day."""
    first, end = datetime.fromisoformat(meter["from"]), datetime.fromisoformat(meter["to"])
    return kyiv_day(first), kyiv_day(end - timedelta(microseconds=1))


def invoice_document(db: Session, invoice: Invoice) -> InvoiceDocument:
    account = db.get(Account, invoice.account_id)
    org = db.get(Organisation, invoice.org_id)
    heat = org.kind == "heat"
    segments = [m for m in invoice.meters or () if "from" in m]
    if len(segments) > 1:  # a meter replaced inside the period: both, in order
        meter = " → ".join(m["meter"] for m in segments)
    else:
        meter = db.scalar(select(Meter.code).where(Meter.account_id == account.id, Meter.removed_at.is_(None))
                          .order_by(Meter.id.desc()).limit(1)) or ""
    paid = -Decimal(db.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.account_id == account.id, LedgerEntry.kind == "payment",
        LedgerEntry.period == invoice.period)) or 0)
    history = db.execute(
        select(Invoice.period, Invoice.quantity_kwh).where(Invoice.account_id == account.id,
                                                           Invoice.status == "issued",
                                                           Invoice.period <= invoice.period)
        .order_by(Invoice.period.desc()).limit(12)
    ).all()
    run = db.get(BillingRun, invoice.run_id)
    return InvoiceDocument(
        number=invoice.number or "чернетка", period=invoice.period,
        issued=kyiv_day(invoice.issued_at) if invoice.issued_at else None, due=invoice.due_date,
        org_name=org.name, org_code=org.edrpou, org_iban=org.iban, org_address=org.address,
        # A tariff change or an estimate adds to the wording, so it starts the line rather than being it.
        cooperative=org.kind in ("cooperative", "osbb", "cottage_town")
        or any(line.get("description", "").startswith(COOPERATIVE_WORDING) for line in invoice.lines),
        account=account.number, holder=account.holder, address=account.address, meter=meter,
        start_reading=invoice.start_reading, end_reading=invoice.end_reading,
        consumption_kwh=invoice.quantity_kwh,
        lines=tuple(ChargeLine(line["description"], line["quantity"], line["unit"], line["price"],
                               Decimal(line["amount"])) for line in invoice.lines),
        opening_balance=invoice.opening_balance, paid_in_period=paid, total=invoice.total,
        history=tuple((period, Decimal(kwh)) for period, kwh in reversed(history)),
        unit="Гкал" if heat else "кВт·год", estimated=bool(invoice.estimated), meters=tuple({**m, "days": segment_days(m)} if "from" in m else m for m in invoice.meters or ()),
        heat=heat, note=str((run.summary or {}).get("invoice_note") or "") if run is not None else "",
        invite_code=account.invite_code or "",
    )
