"""Reports the accounting asks for, from the ledger: оборотно-сальдова відомість (turnover sheet), debtors with
ageing and the regulator's summary by consumer category (every report by kind: ``catalogue.py``). Because all of them start from the ledger, they add up to the accounts'
balances: Σ closing of the sheet = Σ ledger, debtors = Σ closing debit, regulator = the sheet by category.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from cloud.i18n import N_
from cloud.models import Account, Invoice, LedgerEntry, Organisation
from cloud.payments.allocation import BUCKETS, InvoiceDue, ageing, allocate
from cloud.reports.export import Column, Report, money, to_csv, to_xlsx, totals_row, word
from shared.calendar import kyiv_day, period_days

ZERO = Decimal("0.00")
# A header is a key of the word catalogue (N_ marks it for pybabel extract), read in the report's language.
TURNOVER_COLUMNS = (
    Column("account", N_("col_account"), width=16),
    Column("holder", N_("col_holder"), width=28),
    money("opening_debit", N_("col_opening_debit")),
    money("opening_credit", N_("col_opening_credit")),
    money("accrued", N_("col_accrued")),
    money("recalculations", N_("col_recalculations")),
    money("benefits", N_("col_benefits")),
    money("subsidies", N_("col_subsidies")),
    money("paid", N_("col_paid")),
    money("closing_debit", N_("col_closing_debit")),
    money("closing_credit", N_("col_closing_credit")),
)
MONEY_KEYS = tuple(c.key for c in TURNOVER_COLUMNS[2:])
KNOWN_KINDS = ("charge", "benefit", "subsidy", "payment")  # anything else in the ledger is a recalculation


def _cents(value) -> Decimal:
    return Decimal(value or 0).quantize(ZERO)


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
    category: str = "household"

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

    def totals(self, label: str | None = None) -> tuple:
        """The totals row, headed ``label`` (the catalogue's «Разом» unless told)."""
        return totals_row(TURNOVER_COLUMNS, [r.values() for r in self.rows], label or word("total", "uk"),
                          MONEY_KEYS)


def turnover_sheet(db: Session, org_id: int, period: str) -> TurnoverSheet:
    """Оборотно-сальдова відомість: per account the opening balance (entries of earlier periods), what happened
    in the period by kind, and the closing balance. An entry without a period counts as opening."""
    entry = LedgerEntry

    def in_period(*kinds: str, other: bool = False):
        chosen = entry.kind.notin_(KNOWN_KINDS) if other else entry.kind.in_(kinds)
        return func.coalesce(func.sum(case(((entry.period == period) & chosen, entry.amount), else_=0)), 0)

    before = or_(entry.period < period, entry.period.is_(None))
    rows = db.execute(
        select(Account.number, Account.holder, Account.category,
               func.coalesce(func.sum(case((before, entry.amount), else_=0)), 0),
               in_period("charge"), in_period(other=True), in_period("benefit"), in_period("subsidy"),
               in_period("payment"))
        .select_from(Account).outerjoin(entry, entry.account_id == Account.id)
        .where(Account.org_id == org_id).group_by(Account.id, Account.number, Account.holder, Account.category)
        .order_by(Account.number)
    ).all()
    sheet = TurnoverSheet(period)
    for number, holder, category, opening, accrued, other, benefits, subsidies, payments in rows:
        sheet.rows.append(TurnoverRow(number, holder, _cents(opening), _cents(accrued), _cents(other),
                                      -_cents(benefits), -_cents(subsidies), -_cents(payments), category))
    return sheet


@dataclass(frozen=True)
class Debtor:
    account: str
    holder: str
    debt: Decimal
    buckets: dict[str, Decimal]
    oldest_due: date | None


def debtors(db: Session, org_id: int, today: date, period: str | None = None) -> list[Debtor]:
    """Accounts whose ledger balance is a debt, the debt aged by days past due on ``today``.

    The debt is the balance (entries up to ``period`` when given). Which invoices it still sits on is derived
    oldest first: every invoice is due by the sum of its ledger entries (its charge less its benefit and
    subsidy), a positive entry outside any invoice (a reversal, a recalculation) is due the day it was made,
    and everything negative outside an invoice (payments, credits) pays them oldest first.
    """
    entry = LedgerEntry
    scope = [entry.org_id == org_id]
    if period:
        scope.append(or_(entry.period <= period, entry.period.is_(None)))
    balances = {a: _cents(b) for a, b in db.execute(
        select(entry.account_id, func.sum(entry.amount)).where(*scope).group_by(entry.account_id))}
    owing = [a for a, b in balances.items() if b > 0]
    if not owing:
        return []
    dues: dict[int, list[InvoiceDue]] = {a: [] for a in owing}
    credits: dict[int, Decimal] = dict.fromkeys(owing, ZERO)
    for account_id, invoice_id, issued, due, amount in db.execute(
            select(entry.account_id, entry.invoice_id, Invoice.issued_at, Invoice.due_date, func.sum(entry.amount))
            .join(Invoice, Invoice.id == entry.invoice_id).where(*scope)
            .group_by(entry.account_id, entry.invoice_id, Invoice.issued_at, Invoice.due_date)):
        if account_id not in dues:
            continue
        amount = _cents(amount)
        if amount > 0:
            day = kyiv_day(issued) if issued else due or date.min
            dues[account_id].append(InvoiceDue(invoice_id, day, due or day, amount))
        else:
            credits[account_id] -= amount
    loose = (*scope, entry.invoice_id.is_(None))
    for account_id, amount in db.execute(select(entry.account_id, func.sum(entry.amount))
                                         .where(*loose, entry.amount < 0).group_by(entry.account_id)):
        if account_id in credits:
            credits[account_id] -= _cents(amount)
    for entry_id, account_id, created, amount in db.execute(
            select(entry.id, entry.account_id, entry.created_at, entry.amount).where(*loose, entry.amount > 0)):
        if account_id in dues:
            dues[account_id].append(InvoiceDue(-entry_id, kyiv_day(created), kyiv_day(created), _cents(amount)))
    accounts = {a.id: a for a in db.scalars(select(Account).where(Account.org_id == org_id))}
    found = []
    for account_id in owing:
        ordered = sorted(dues[account_id], key=lambda d: (d.issued, d.due, d.invoice_id))
        allocations, _ = allocate(ordered, credits[account_id], today)
        debt = sum((a.outstanding for a in allocations), ZERO)
        oldest = min((d.due for d, a in zip(ordered, allocations, strict=True) if a.outstanding > 0), default=None)
        account = accounts[account_id]
        found.append(Debtor(account.number, account.holder, debt, ageing(ordered, allocations, today), oldest))
    return sorted(found, key=lambda d: (-d.debt, d.account))


def regulator_summary(db: Session, org_id: int, period: str) -> list[dict]:
    """By consumer category: accounts, volume (kWh), accrued, paid, debt and prepayment at the period's end —
    the turnover sheet grouped by category, so every figure adds up to the sheet's totals."""
    volume = {c: Decimal(v or 0) for c, v in db.execute(
        select(Account.category, func.sum(Invoice.quantity_kwh)).join(Invoice, Invoice.account_id == Account.id)
        .where(Invoice.org_id == org_id, Invoice.period == period, Invoice.status == "issued")
        .group_by(Account.category))}
    groups: dict[str, dict] = {}
    for row in turnover_sheet(db, org_id, period).rows:
        group = groups.setdefault(row.category, {
            "category": row.category, "accounts": 0, "volume_kwh": volume.get(row.category, Decimal(0)).quantize(
                Decimal("0.0001")), "accrued_uah": ZERO, "recalculations_uah": ZERO, "benefits_uah": ZERO,
            "subsidies_uah": ZERO, "paid_uah": ZERO, "debt_uah": ZERO, "prepaid_uah": ZERO})
        values = row.values()
        group["accounts"] += 1
        for key, index in (("accrued_uah", 4), ("recalculations_uah", 5), ("benefits_uah", 6), ("subsidies_uah", 7),
                           ("paid_uah", 8), ("debt_uah", 9), ("prepaid_uah", 10)):
            group[key] += values[index]
    return [groups[c] for c in sorted(groups)]


# ---- the catalogue: every report as a Report (title, columns, rows, totals) ----------------------------------

def volume_unit(org: Organisation) -> str:
    """The catalogue key of the unit of the volumes on invoices: Gcal for a heat network, kWh otherwise."""
    return N_("gcal") if org.kind == "heat" else N_("kwh")


def in_unit(column: Column, org: Organisation) -> Column:
    """A volume column (its header's ``{detail}`` the kWh) in the organisation's unit — Gcal to 0.0001, as
    invoices keep it; any other column as it is."""
    if column.detail != "kwh":
        return column
    places = 4 if org.kind == "heat" and column.places == 3 else column.places
    return replace(column, detail=volume_unit(org), places=places)


def period_subtitle(org_name: str, period: str, lang: str, extra: str = "") -> str:
    """«ОК «Сосновий Бір» · період 2026-11», and ``extra`` after another « · » when given."""
    text = word("report_subtitle", lang, org=org_name, period=period)
    return text + (f" · {extra}" if extra else "")


def turnover_report(db: Session, org: Organisation, period: str, today: date, lang: str) -> Report:
    sheet = turnover_sheet(db, org.id, period)
    return Report("turnover", word("turnover", lang), period_subtitle(org.name, period, lang), TURNOVER_COLUMNS,
                  [r.values() for r in sheet.rows], sheet.totals(word("total", lang)), lang)


def as_of(period: str, today: date) -> date:
    """The day a period's debts are aged on: its last day, or today while it runs."""
    return min(today, period_days(period)[1])


DEBTOR_COLUMNS = (
    Column("account", N_("col_account"), width=16),
    Column("holder", N_("col_holder"), width=28),
    money("debt", N_("col_debt")),
    *(money(f"days_{b}", N_("col_days"), b) for b in BUCKETS),  # «0-30 днів»
    Column("oldest_due", N_("col_oldest_due"), kind="date"),
)


def debtors_report(db: Session, org: Organisation, period: str, today: date, lang: str) -> Report:
    day = as_of(period, today)
    found = debtors(db, org.id, day, period)
    rows = [(d.account, d.holder, d.debt, *(d.buckets[b].quantize(ZERO) for b in BUCKETS), d.oldest_due)
            for d in found]
    keys = ("debt", *(f"days_{b}" for b in BUCKETS))
    on = word("report_as_of", lang, day=f"{day:%d.%m.%Y}")
    marks = ["row-suspected_theft" if d.buckets["90+"] > 0 else "row-elevated" if d.buckets["61-90"] > 0 else ""
             for d in found]
    return Report("debtors", word("debtors", lang), period_subtitle(org.name, period, lang, on), DEBTOR_COLUMNS,
                  rows, totals_row(DEBTOR_COLUMNS, rows, word("total", lang), keys), lang, marks=marks)


REGULATOR_COLUMNS = (
    Column("category", N_("col_category"), width=24),
    Column("accounts", N_("col_accounts"), places=0, width=10),
    Column("volume_kwh", N_("col_volume"), N_("kwh"), places=3),  # «Обсяг, кВт·год»; Гкал: in_unit
    money("accrued", N_("col_accrued")),
    money("recalculations", N_("col_recalculations")),
    money("benefits", N_("col_benefits")),
    money("subsidies", N_("col_subsidies")),
    money("paid", N_("col_paid")),
    money("debt", N_("col_debt_at_end")),
    money("prepaid", N_("col_prepaid_at_end")),
)


def regulator_report(db: Session, org: Organisation, period: str, today: date, lang: str) -> Report:
    rows = [(word(f"category_{g['category']}", lang), g["accounts"], g["volume_kwh"], g["accrued_uah"],
             g["recalculations_uah"], g["benefits_uah"], g["subsidies_uah"], g["paid_uah"], g["debt_uah"],
             g["prepaid_uah"]) for g in regulator_summary(db, org.id, period)]
    columns = tuple(in_unit(c, org) for c in REGULATOR_COLUMNS)
    return Report("regulator", word("regulator_summary", lang), period_subtitle(org.name, period, lang), columns,
                  rows, totals_row(columns, rows, word("total", lang), [c.key for c in columns[1:]]), lang)


# Kept for callers of the first version: the turnover sheet as CSV text and as an XLSX workbook.
def turnover_csv(sheet: TurnoverSheet, lang: str = "uk") -> str:
    report = Report("turnover", word("turnover", lang), sheet.period, TURNOVER_COLUMNS,
                    [r.values() for r in sheet.rows], sheet.totals(word("total", lang)), lang)
    return to_csv(report).decode("utf-8")


def turnover_xlsx(sheet: TurnoverSheet, org_name: str, lang: str = "uk") -> bytes:
    title = word("turnover_for_period", lang, period=sheet.period)
    return to_xlsx(Report("turnover", title, org_name, TURNOVER_COLUMNS, [r.values() for r in sheet.rows],
                          sheet.totals(word("total", lang)), lang))
