"""Text cells a spreadsheet opens as text: CSV/formula injection (CWE-1236) neutralised the way OWASP
recommends, and the control characters an XLSX file cannot hold taken out. Values in, values out.

Excel, LibreOffice and Google Sheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula —
``=HYPERLINK("http://evil","x")`` typed as an account number becomes a live link in the accountant's ОСВ — and a
leading tab or carriage return is skipped before the check. A leading apostrophe makes the cell text. Only text
is touched: a negative number is a number (Decimal, int, float) and stays one; exports write numbers from the
values, never from their text.
"""

from __future__ import annotations

import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# XML 1.0 allows tab, LF and CR of the C0 controls; openpyxl refuses to write the others.
_NOT_IN_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def neutralise(value):
    """``value`` with an apostrophe in front when it is text a spreadsheet would run; anything else as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def workbook_text(value: str) -> str:
    """Text as an XLSX cell can hold it: neutralised, without the control characters XML cannot carry."""
    return neutralise(_NOT_IN_XML.sub("", value))
