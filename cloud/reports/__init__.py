"""Reports for accounting and the board: оборотно-сальдова відомість, debtors, payments, analytics, exports.

Not to be confused with the gateway's on-site energy report (``edge/energy_reports.py``).
"""
