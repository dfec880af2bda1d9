"""Properties of statements with reversals and refunds, on the database (hypothesis): every kopeck that came in
is on an account, in the queue or reversed; every account's ledger is its payments less their reversals; no
payment is reversed twice; importing the same statements again changes nothing."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cloud.accounts.organisations import create_organisation, upsert_account
from cloud.models import LedgerEntry, Organisation, Payment, PaymentReversal
from cloud.payments.importer import import_statement
from tests.cloud.payments.statements import camt053 as statement
from tests.cloud.payments.statements import entry

ACCOUNTS = ("01001", "01002", "04001")
IBANS = ("UA11", "UA22", "UA33")
money = st.decimals(min_value="0.01", max_value="900", places=2)
credit = st.tuples(st.just("credit"), money, st.sampled_from([*ACCOUNTS, ""]), st.integers(0, 2))
reversal = st.tuples(st.just("reversal"), st.integers(0, 30))  # takes back one of the credits so far (if any)
refund = st.tuples(st.just("refund"), st.integers(0, 30))  # pays one credit's amount back to its IBAN
stray = st.tuples(st.just("stray"), money)  # a debit to nobody we know (the supplier)


def debit(amount, ref, iban, reversal_flag, day):
    return (f'<Ntry><Amt Ccy="UAH">{amount}</Amt><CdtDbtInd>DBIT</CdtDbtInd>'
            f'{"<RvslInd>true</RvslInd>" if reversal_flag else ""}<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{day}</Dt>'
            f'</BookgDt><AcctSvcrRef>{ref}</AcctSvcrRef><NtryDtls><TxDtls><RltdPties><Cdtr><Nm>X</Nm></Cdtr>'
            f'<CdtrAcct><Id><IBAN>{iban}</IBAN></Id></CdtrAcct></RltdPties></TxDtls></NtryDtls></Ntry>')


def build(steps) -> tuple[list[bytes], Decimal]:
    """Two statements (the steps split in half) and the money that came in."""
    credits, xml, total = [], [], Decimal(0)
    for n, step in enumerate(steps):
        day = f"2026-11-{1 + n % 28:02d}"
        if step[0] == "credit":
            _, amount, account, iban = step
            purpose = f"о/р {account}" if account else "за світло"
            xml.append(entry(f"{amount}", purpose, f"C{n}", iban=IBANS[iban], day="2026-11-01"))
            credits.append((f"C{n}", amount, IBANS[iban]))
            total += amount
        elif step[0] in ("reversal", "refund") and credits:
            ref, amount, iban = credits.pop(step[1] % len(credits))  # a bank takes a payment back once
            xml.append(debit(f"{amount}", ref if step[0] == "reversal" else f"D{n}", iban, step[0] == "reversal",
                             day))
        elif step[0] == "stray":
            xml.append(debit(f"{step[1]}", f"S{n}", "UA99", False, day))
    half = len(xml) // 2
    return [statement(*xml[:half]), statement(*xml[half:])], total


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.one_of(credit, credit, reversal, refund, stray), min_size=1, max_size=14))
def test_every_kopeck_is_on_an_account_in_the_queue_or_reversed(db, steps):
    files, total = build(steps)
    with db() as session:
        org = create_organisation(session, f"Prop {session.scalar(select(func.count()).select_from(Organisation))}",
                                  "cooperative")
        for number in ACCOUNTS:
            upsert_account(session, org, number)
        org_id = org.id

    def imported():
        for n, data in enumerate(files):
            with db() as session:
                import_statement(session, session.get(Organisation, org_id), data, f"s{n}.xml", "camt053")
        with db() as session:
            payments = session.scalars(select(Payment).where(Payment.org_id == org_id)).all()
            reversed_ids = {r.payment_id for r in session.scalars(
                select(PaymentReversal).where(PaymentReversal.org_id == org_id)) if r.payment_id is not None}
            ledger = session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                                    .where(LedgerEntry.org_id == org_id))
            links = session.scalar(select(func.count()).select_from(PaymentReversal)
                                   .where(PaymentReversal.org_id == org_id, PaymentReversal.payment_id.is_not(None)))
        return payments, reversed_ids, Decimal(ledger), links

    payments, reversed_ids, ledger, links = imported()
    assert sum((p.amount for p in payments), Decimal(0)) == total  # nothing lost, nothing doubled
    assert links == len(reversed_ids)  # no payment reversed twice
    on_accounts = sum((p.amount for p in payments if p.account_id is not None and p.id not in reversed_ids),
                      Decimal(0))
    assert ledger == -on_accounts  # each account's ledger: its payments less their reversals
    queued = sum((p.amount for p in payments if p.account_id is None and p.id not in reversed_ids), Decimal(0))
    gone = sum((p.amount for p in payments if p.id in reversed_ids), Decimal(0))
    assert on_accounts + queued + gone == total
    again, reversed_again, ledger_again, links_again = imported()  # the same two statements once more
    assert [(p.id, p.account_id) for p in again] == [(p.id, p.account_id) for p in payments]
    assert (reversed_again, ledger_again, links_again) == (reversed_ids, ledger, links)
