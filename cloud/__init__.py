"""Balans cloud: the Flask application factory (``flask --app cloud run`` or ``balans cloud serve``).

Each domain package brings its blueprint (``views.py``) and its commands (``commands.py``); this factory only
binds them to one app.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from cloud import db, i18n, request_guard, security_headers
from cloud.accounts import people_views as people
from cloud.accounts import views as accounts
from cloud.admin import views as admin
from cloud.alerts import api as alerts_api
from cloud.alerts import views as alerts
from cloud.api import openapi as office_openapi
from cloud.billing import views as billing
from cloud.cabinet import views as cabinet
from cloud.cli.commands import register_flask_commands
from cloud.config import DEFAULTS, validate
from cloud.csrf import csrf
from cloud.dashboards import views as dashboards
from cloud.ingest import remote_views as ingest_remote
from cloud.ingest import views as ingest
from cloud.jobs import views as jobs
from cloud.month import reading_views as readings
from cloud.month import views as month
from cloud.operations import views as operations
from cloud.payments import statement_views as statements
from cloud.payments import views as payments
from cloud.register import api as register_api
from cloud.register import meter_views as register_meters
from cloud.register import views as register
from cloud.reports import views as reports
from cloud.settings import api as settings_api
from cloud.settings import views as settings
from cloud.sites import views as sites
from cloud.updates import views as updates


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_path=str(Path(os.environ.get("BALANS_INSTANCE_PATH", "instance")).resolve()))
    app.config.from_mapping(DEFAULTS)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env("BALANS")
    else:
        app.config.from_mapping(test_config)
    validate(app.config)
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_CONTENT_LENGTH"])

    db.init_app(app)
    csrf.init_app(app)
    i18n.init_app(app)
    security_headers.init_app(app)
    request_guard.init_app(app)
    request_guard.install_converters(app)
    if app.config["PROXY_HOPS"]:  # behind nginx: the client's address and https come from its X-Forwarded-*
        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    for blueprint in (accounts.bp, sites.bp, billing.bp, cabinet.bp, admin.bp, reports.bp, payments.bp,
                      people.bp, register.bp, register_meters.bp, settings.bp,
                      jobs.bp, month.bp, readings.bp, statements.bp, operations.bp, dashboards.bp,
                      alerts.bp, updates.bp):
        app.register_blueprint(blueprint)
    # Gateways and the payment provider prove themselves with signatures, not cookies.
    for blueprint in (ingest.bp, ingest_remote.bp, payments.callbacks, people.api, admin.api, register_api.bp, settings_api.bp,
                      jobs.api, month.api, readings.api, statements.api, office_openapi.bp, operations.api,
                      alerts_api.bp, updates.api):
        app.register_blueprint(blueprint)
        csrf.exempt(blueprint)
    register_flask_commands(app)
    return app
