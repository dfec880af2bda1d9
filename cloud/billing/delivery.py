"""Delivering issued invoices: one PDF per run for the office, and an e-mail with its PDF per account."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.billing.document import invoice_document
from cloud.billing.invoice_pdf import render
from cloud.models import Account, BillingRun, Invoice, Site
from cloud.notifications.mail import queue_mail


def run_invoices(db: Session, site: Site, period: str) -> list[Invoice]:
    run = db.scalar(select(BillingRun).where(BillingRun.site_id == site.id, BillingRun.period == period))
    if run is None:
        return []
    return list(db.scalars(select(Invoice).where(Invoice.run_id == run.id).order_by(Invoice.number,
                                                                                    Invoice.account_id)))


def run_pdf(db: Session, site: Site, period: str) -> bytes:
    """All invoices of a run in one PDF, in number order."""
    return render(invoice_document(db, invoice) for invoice in run_invoices(db, site, period))


def queue_invoice_emails(db: Session, site: Site, period: str) -> int:
    """An e-mail with the PDF for every issued invoice whose account has an address (once per invoice)."""
    queued = 0
    for invoice in run_invoices(db, site, period):
        account = db.get(Account, invoice.account_id)
        if invoice.status != "issued" or not account.email:
            continue
        document = invoice_document(db, invoice)
        body = (f"Добрий день, {account.holder}!\n\nРахунок № {document.number} за {document.period_words} "
                f"для особового рахунку {account.number}: до сплати {document.to_pay:.2f} грн "
                f"до {document.due:%d.%m.%Y}.\nРахунок у вкладенні; оплатити можна за QR-кодом.\n\n{document.org_name}")
        message = queue_mail(db, invoice.org_id, account.email, f"Рахунок № {document.number} за {document.period_words}",
                             body, f"rakhunok-{document.number}.pdf", render([document]), "invoice",
                             key=f"invoice:{invoice.id}")
        queued += message is not None
    return queued
