"""Reports the accounting asks for: оборотно-сальдова відомість and debtors with ageing — on screen,
as CSV and as XLSX. All figures come from the ledger, so they add up to the accounts' balances.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from cloud.models import Account, Invoice, LedgerEntry
from cloud.payments.allocation import BUCKETS, InvoiceDue, ageing, allocate

ZERO = Decimal("0.00")
TURNOVER_COLUMNS = ("account", "holder", "opening_debit", "opening_credit", "accrued", "recalculations", "benefits",
                    "subsidies", "paid", "closing_debit", "closing_credit")
TURNOVER_HEADERS_UK = ("Особовий рахунок", "Абонент", "Сальдо на початок, дебет", "Сальдо на початок, кредит",
                       "Нараховано", "Перерахунки", "Пільги", "Субсидії", "Оплачено", "Сальдо на кінець, дебет",
                       "Сальдо на кінець, кредит")


@dataclass
class TurnoverRow:
    account: str
    holder: str
    opening: Decimal = ZERO
    accrued: Decimal = ZERO
    recalculations: Decimal = ZERO
    benefits: Decimal = ZERO
    subsidies: Decimal = ZERO
    paid: Decimal = ZERO

    @property
    def closing(self) -> Decimal:
        return self.opening + self.accrued + self.recalculations - self.benefits - self.subsidies - self.paid

    def values(self) -> tuple:
        return (self.account, self.holder, max(self.opening, ZERO), max(-self.opening, ZERO), self.accrued,
                self.recalculations, self.benefits, self.subsidies, self.paid, max(self.closing, ZERO),
                max(-self.closing, ZERO))


@dataclass
class TurnoverSheet:
    period: str
    rows: list[TurnoverRow] = field(default_factory=list)

    def totals(self) -> tuple:
        columns = list(zip(*(row.values()[2:] for row in self.rows), strict=True)) if self.rows else [()] * 9
        return ("Разом", "", *(sum(column, ZERO) for column in columns))


def turnover_sheet(db: Session, org_id: int, period: str) -> TurnoverSheet:
    """Per account: opening balance, what happened in the period by kind, closing balance."""
    entry = LedgerEntry

    def in_period(kind: str):
        return func.coalesce(func.sum(case(((entry.period == period) & (entry.kind == kind), entry.amount),
                                           else_=0)), 0)

    rows = db.execute(
        select(Account.number, Account.holder,
               func.coalesce(func.sum(case((entry.period < period, entry.amount), else_=0)), 0),
               in_period("charge"), in_period("adjustment"), in_period("benefit"), in_period("subsidy"),
               in_period("payment"))
        .select_from(Account).outerjoin(entry, entry.account_id == Account.id)
        .where(Account.org_id == org_id).group_by(Account.id, Account.number, Account.holder)
        .order_by(Account.number)
    ).all()
    sheet = TurnoverSheet(period)
    for number, holder, opening, accrued, adjustments, benefits, subsidies, payments in rows:
        sheet.rows.append(TurnoverRow(number, holder, Decimal(opening).quantize(ZERO), Decimal(accrued).quantize(ZERO),
                                      Decimal(adjustments).quantize(ZERO), -Decimal(benefits).quantize(ZERO),
                                      -Decimal(subsidies).quantize(ZERO), -Decimal(payments).quantize(ZERO)))
    return sheet


@dataclass(frozen=True)
class Debtor:
    account: str
    holder: str
    debt: Decimal
    buckets: dict[str, Decimal]
    oldest_due: date | None


def debtors(db: Session, org_id: int, today: date) -> list[Debtor]:
    """Accounts with outstanding invoices after allocating their credits oldest first, by days past due."""
    invoices: dict[int, list[InvoiceDue]] = {}
    for invoice_id, account_id, issued, due, total in db.execute(
            select(Invoice.id, Invoice.account_id, Invoice.issued_at, Invoice.due_date, Invoice.total)
            .where(Invoice.org_id == org_id, Invoice.status == "issued")):
        invoices.setdefault(account_id, []).append(InvoiceDue(invoice_id, issued.date(), due, Decimal(total)))
    credits = dict(db.execute(
        select(LedgerEntry.account_id, -func.sum(LedgerEntry.amount))
        .where(LedgerEntry.org_id == org_id, LedgerEntry.kind != "charge").group_by(LedgerEntry.account_id)).all())
    accounts = {a.id: a for a in db.scalars(select(Account).where(Account.id.in_(list(invoices))))}
    found = []
    for account_id, due_list in invoices.items():
        allocations, _ = allocate(due_list, Decimal(credits.get(account_id) or 0), today)
        debt = sum((a.outstanding for a in allocations), ZERO)
        if debt <= 0:
            continue
        oldest = min((i.due for i, a in zip(sorted(due_list, key=lambda x: (x.issued, x.invoice_id)), allocations,
                                            strict=True) if a.outstanding > 0), default=None)
        account = accounts[account_id]
        found.append(Debtor(account.number, account.holder, debt, ageing(due_list, allocations, today), oldest))
    return sorted(found, key=lambda d: (-d.debt, d.account))


def turnover_csv(sheet: TurnoverSheet) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerow(TURNOVER_HEADERS_UK)
    for row in [*(r.values() for r in sheet.rows), sheet.totals()]:
        writer.writerow([f"{v:.2f}".replace(".", ",") if isinstance(v, Decimal) else v for v in row])
    return "\ufeff" + buffer.getvalue()  # Excel opens UTF-8 with a BOM


def turnover_xlsx(sheet: TurnoverSheet, org_name: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    page = book.active
    page.title = f"ОСВ {sheet.period}"
    page.append([f"Оборотно-сальдова відомість за {sheet.period}", org_name])
    page["A1"].font = Font(bold=True, size=13)
    page.append(list(TURNOVER_HEADERS_UK))
    for cell in page[2]:
        cell.font = Font(bold=True)
    for row in [*(r.values() for r in sheet.rows), sheet.totals()]:
        page.append([float(v) if isinstance(v, Decimal) else v for v in row])
        for cell in page[page.max_row][2:]:
            cell.number_format = "# ##0.00"
    for cell in page[page.max_row]:
        cell.font = Font(bold=True)
    page.column_dimensions["A"].width = 16
    page.column_dimensions["B"].width = 28
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def debtors_csv(found: list[Debtor]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerow(["Особовий рахунок", "Абонент", "Борг", *(f"{b} днів" for b in BUCKETS), "Найдавніший термін"])
    for debtor in found:
        writer.writerow([debtor.account, debtor.holder, f"{debtor.debt:.2f}".replace(".", ","),
                         *(f"{debtor.buckets[b]:.2f}".replace(".", ",") for b in BUCKETS),
                         debtor.oldest_due.isoformat() if debtor.oldest_due else ""])
    return "\ufeff" + buffer.getvalue()
