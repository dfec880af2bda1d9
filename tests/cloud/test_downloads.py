"""A download's name comes from the server, never from the URL: a crafted last segment (CR LF, quotes, ``../``)
is refused with a 400 that names the period, and a site code with a newline, a quote, a backslash, Cyrillic or
fifty letters still makes one clean ``Content-Disposition`` (RFC 6266: an ASCII ``filename=`` and a UTF-8
``filename*=``). Checked on the bytes a real server writes, since a test client never encodes its headers."""

from __future__ import annotations

import socket
import threading
from datetime import datetime
from urllib.parse import quote, unquote, urlencode

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.serving import make_server

from cloud.accounts.organisations import create_user
from cloud.downloads import attachment
from provisioning.ports import free_port
from shared.file_names import LONGEST_STEM, download_name
from tests.cloud.office import account_with_meter, bill, office, read

PASSWORD = "correct horse battery"


def raw_request(port: int, target: str, method: str = "GET", cookie: str = "", body: str = "") -> tuple[int, list]:
    """(status, [(name, value), …]) exactly as the server wrote them; the target is sent byte for byte."""
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if cookie:
        head += f"Cookie: {cookie}\r\n"
    if body:
        head += f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall((head + "\r\n" + body).encode("ascii"))
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    assert data, "the server closed the connection without an answer"
    header_block = data.split(b"\r\n\r\n", 1)[0]
    assert all(byte < 0x80 for byte in header_block), header_block  # a header is ASCII, nothing else
    status_line, *lines = header_block.decode("ascii").split("\r\n")
    return int(status_line.split()[1]), [tuple(line.split(": ", 1)) for line in lines]


def disposition(headers: list) -> str:
    [value] = [v for name, v in headers if name.lower() == "content-disposition"]
    return value


def utf8_name(value: str) -> str:
    """The file name a browser reads from ``filename*=UTF-8''…`` (or ``filename=`` when there is no star)."""
    options = dict(part.strip().split("=", 1) for part in value.split(";")[1:])
    if "filename*" in options:
        return unquote(options["filename*"].removeprefix("UTF-8''"))
    return options["filename"].strip('"')


@pytest.fixture
def server(app):
    running = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield running.server_port
    running.shutdown()


def billed_site(db, code: str) -> None:
    """An organisation whose site ``code`` has one house billed and issued for October, and its accountant."""
    with db() as session:
        org, site = office(session, code=code)
        create_user(session, "buh@coop.ua", PASSWORD, "accountant", org)
        _, meter = account_with_meter(session, org, site, "01001")
        read(session, meter, datetime(2026, 10, 1), "1000")
        read(session, meter, datetime(2026, 11, 1), "1100")
    bill(db, code, "2026-10", issue=True)


def signed_in(port: int) -> str:
    status, headers = raw_request(port, "/login", "POST",
                                  body=urlencode({"email": "buh@coop.ua", "password": PASSWORD}))
    assert status == 302, headers
    return "; ".join(v.split(";", 1)[0] for name, v in headers if name.lower() == "set-cookie")


@pytest.mark.parametrize("segment", [
    "2026-10%0d%0aSet-Cookie:%20stolen=1.pdf",  # header injection
    "2026-10%22%3B%20filename%3D%22evil.exe.pdf",  # a quote closing the name and a second name
    "..%2F..%2Fetc%2Fpasswd.pdf",  # a path
    "2026-10%0a.pdf",
    "2026-1%D0%B0.pdf",  # a Cyrillic «а» where a digit should be
    "2026-10" + "0" * 5000 + ".pdf",  # very long
])
def test_a_crafted_pdf_url_is_refused_and_never_reaches_the_header(db, server, segment):
    billed_site(db, "TP-7")
    cookie = signed_in(server)
    status, headers = raw_request(server, f"/sites/TP-7/invoices/{segment}", cookie=cookie)
    assert status in (400, 404), (status, headers)
    names = [name.lower() for name, _ in headers]
    assert "content-disposition" not in names
    assert not any("stolen" in value or "evil" in value for _, value in headers)


def test_the_refusal_names_the_period_and_the_good_url_downloads(db, server, client):
    billed_site(db, "TP-7")
    client.post("/login", data={"email": "buh@coop.ua", "password": PASSWORD})
    refused = client.get("/sites/TP-7/invoices/2026-13.pdf")  # a control character never matches the route: 404
    assert refused.status_code == 400 and "РРРР-ММ" in refused.get_data(as_text=True)
    no_run = client.get("/sites/TP-7/invoices/2026-09.pdf")
    assert no_run.status_code == 404 and "2026-09" in no_run.get_data(as_text=True)
    status, headers = raw_request(server, "/sites/TP-7/invoices/2026-10.pdf", cookie=signed_in(server))
    assert status == 200 and disposition(headers) == "attachment; filename=rakhunky-TP-7-2026-10.pdf"


@pytest.mark.parametrize(("code", "expected"), [
    ('ТП "Бір" 7', "rakhunky-ТП-Бір-7-2026-10.pdf"),  # Cyrillic, quotes and spaces
    ('TP-7"; filename=evil', "rakhunky-TP-7-filename-evil-2026-10.pdf"),  # a quote that would end the name
    ("TP\\7;x=..", "rakhunky-TP-7-x-2026-10.pdf"),
    ("Ї" * 50, f"rakhunky-{'Ї' * 50}-2026-10.pdf"),
    ("\u202etxt.exe", "rakhunky-txt.exe-2026-10.pdf"),  # a right-to-left override that would reverse the name
])
def test_a_site_code_of_any_shape_makes_one_clean_file_name(db, server, code, expected):
    billed_site(db, code)
    status, headers = raw_request(server, f"/sites/{quote(code, safe='')}/invoices/2026-10.pdf",
                                  cookie=signed_in(server))
    assert status == 200, headers
    value = disposition(headers)
    assert value.startswith("attachment; filename=") and "\r" not in value and "\n" not in value
    assert utf8_name(value) == expected
    assert not any(name.lower() == "set-cookie" and "stolen" in v for name, v in headers)


def test_a_report_download_is_named_by_the_server(db, server, client):
    billed_site(db, "TP-7")
    client.post("/login", data={"email": "buh@coop.ua", "password": PASSWORD})
    bad_format = client.get("/reports/turnover?period=2026-10&format=csv%0d%0aX:%20y")
    assert bad_format.status_code == 400 and "csv, xlsx, json" in bad_format.get_data(as_text=True)
    bad_period = client.get("/reports/turnover?period=2026-10%0d%0a&format=csv")
    assert bad_period.status_code == 400 and "РРРР-ММ" in bad_period.get_data(as_text=True)
    status, headers = raw_request(server, "/reports/debtors?period=2026-10&format=xlsx", cookie=signed_in(server))
    assert status == 200 and disposition(headers) == "attachment; filename=borzhnyky-2026-10.xlsx"


@given(st.text(), st.text(max_size=300))
def test_any_value_makes_a_name_of_one_safe_word_and_an_ascii_header(first, second):
    name = download_name("rakhunky", first, second, extension="pdf")
    stem = name.removesuffix(".pdf")
    assert 0 < len(stem) <= LONGEST_STEM and ".." not in stem and not stem.startswith((".", "-"))
    assert all(c.isalnum() or c in "-_." for c in stem)
    with Flask(__name__).test_request_context():
        value = attachment(b"%PDF", "application/pdf", "rakhunky", first, second, extension="pdf").headers[
            "Content-Disposition"]
    assert value.isascii() and not any(c in value for c in "\r\n\0")
    assert utf8_name(value) == name
