"""What stops a billing run or a change to billing records: the message names the record and why."""

from cloud.errors import ExplainedError


class BillingError(ExplainedError):
    """A run that cannot be made; the message names the record and why (``code``/``params`` for a page)."""
