"""A file sent to the browser to save (a run's invoices as PDF, a report as CSV or XLSX), named by the server.

The name is built from the server's own values by ``shared.file_names.download_name`` and written by Werkzeug's
``send_file`` as RFC 6266 wants it: an ASCII ``filename=`` for old clients and ``filename*=UTF-8''…`` for the
rest, so a Cyrillic site code is neither a 500 nor a mangled name.
"""

from __future__ import annotations

import io

from flask import Response, send_file

from shared.file_names import download_name


def attachment(body: bytes, mimetype: str, *name_parts: object, extension: str, inline: bool = False) -> Response:
    """``body`` as a download named from ``name_parts`` («rakhunky», site code, period) and ``extension``;
    ``inline`` asks the browser to show it (a resident's invoice) rather than save it."""
    return send_file(io.BytesIO(body), mimetype=mimetype, as_attachment=not inline,
                     download_name=download_name(*name_parts, extension=extension), max_age=0)
