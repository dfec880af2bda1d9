"""The resident's cabinet: their own account's invoices, payments, readings and card payment."""
