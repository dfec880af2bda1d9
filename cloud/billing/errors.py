"""What stops a billing run or a change to billing records: the message names the record and why."""


class BillingError(Exception):
    """A run that cannot be made; the message names the record and why."""
