"""Billing: from metered energy to invoices and ledger entries (rating math lives in shared/)."""
