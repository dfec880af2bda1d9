"""What a person is told when something cannot be done: an English sentence for logs and the CLI, and a
catalogue key with its values so that a page says the same in the page's language (``cloud.i18n.explain``).

A service raises ``SomeError("receipt 17 is already booked …", "err_receipt_taken", receipt="17", …)``; the key
is a msgid of cloud/translations (``pybabel extract`` finds it: babel.cfg lists the error classes and Phrase).
"""

from __future__ import annotations


class ExplainedError(Exception):
    """An error with ``code`` (a catalogue key; "" when a page shows the English message) and ``params``
    (the key's placeholders; a param that is itself an ExplainedError or a Phrase is explained in turn)."""

    def __init__(self, message: str, code: str = "", **params):
        super().__init__(message)
        self.code, self.params = code, params


class Phrase(str):
    """An English phrase that keeps its catalogue key and values: it joins, prints and goes into JSON like any
    string (the CLI), and a page says it in the page's language — a billing run's problems, who entered a
    reading inside an error."""

    code: str
    params: dict

    def __new__(cls, message: str, code: str, **params) -> Phrase:
        found = super().__new__(cls, message)
        found.code, found.params = code, params
        return found
