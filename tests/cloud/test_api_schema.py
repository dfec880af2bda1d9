"""Schemathesis against the API's own OpenAPI document: whatever the schema allows, never a 5xx."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from cloud import create_app
from cloud.migrate import upgrade

schemathesis = pytest.importorskip("schemathesis")


def _app():
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='balans-schema-')) / 'cloud.sqlite3'}"
    upgrade(url)
    return create_app({"DATABASE_URL": url, "SECRET_KEY": "schema", "TESTING": True})


schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_5xx(case):
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:200]}"
