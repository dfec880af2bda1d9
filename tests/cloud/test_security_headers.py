"""Every page holds the browser to this site: a Content-Security-Policy with no inline script or style,
no framing, no sniffing, a referrer policy, HSTS over https — and a login that never sends the browser away."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from cloud.accounts.organisations import create_user
from cloud.accounts.redirects import same_site_path
from cloud.models import Organisation
from tests.cloud.conftest import setup_cooperative

PASSWORD = "correct horse battery"
TEMPLATES = Path(__file__).resolve().parents[2] / "cloud" / "templates"


@pytest.fixture
def manager(app, db, seed_scenario):
    setup_cooperative(db, seed_scenario)
    with db() as session:
        create_user(session, "head@coop.ua", PASSWORD, "manager", session.scalar(select(Organisation)))
    return "head@coop.ua"


def test_every_response_carries_the_policy(client):
    for path in ("/login", "/api/v1/openapi.json", "/static/balans.css", "/no/such/page"):
        headers = client.get(path).headers
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy and "form-action 'self' https://www.liqpay.ua" in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert "Strict-Transport-Security" not in headers  # plain http: a promise it could not keep


def test_over_https_the_browser_is_told_to_stay_on_https(client):
    assert "max-age=" in client.get("/login", base_url="https://balans.example").headers["Strict-Transport-Security"]


def test_no_template_carries_inline_script_or_style():
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), f"{template.name}: an inline <script>"
        assert not re.search(r"\son[a-z]+=", text), f"{template.name}: an inline event handler"
        assert not re.search(r"\sstyle=|<style", text), f"{template.name}: an inline style"


@pytest.mark.parametrize("target", [
    "/%09/evil.example", "/%0a/x", "/%0d/evil.example", "//evil.example", "/\\evil.example", "https://evil.example",
    "/%5Cevil.example", "javascript:alert(1)", " /sites/", "/ /evil.example",
])
def test_login_never_sends_the_browser_to_another_site(client, manager, target):
    response = client.post(f"/login?next={target}", data={"email": manager, "password": PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_login_goes_back_to_the_page_asked_for(client, manager):
    response = client.post("/login?next=/reports/turnover%3Fperiod%3D2026-10", data={
        "email": manager, "password": PASSWORD})
    assert response.headers["Location"] == "/reports/turnover?period=2026-10"


def test_the_path_check_reads_urls_as_a_browser_does():
    assert same_site_path("/sites/TP-118?period=2026-10") == "/sites/TP-118?period=2026-10"
    for bad in ("/\t/evil.example", "/\n/x", "/\\evil", "//evil", "http://evil", "", None, "/x" + "y" * 3000):
        assert same_site_path(bad) is None
