"""Payments: bank statements in, matching to accounts, allocation to invoices, debts."""
