"""Balans cloud: the Flask application factory (``flask --app cloud run`` or ``balans cloud serve``).

Each domain package brings its blueprint (``views.py``) and its commands (``commands.py``); this factory only
binds them to one app.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

from cloud import db, i18n, security_headers
from cloud.accounts import views as accounts
from cloud.admin import views as admin
from cloud.billing import views as billing
from cloud.cabinet import views as cabinet
from cloud.cli.commands import register_flask_commands
from cloud.config import DEFAULTS, validate
from cloud.csrf import csrf
from cloud.ingest import views as ingest
from cloud.payments import views as payments
from cloud.reports import views as reports
from cloud.sites import views as sites


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
    for blueprint in (accounts.bp, sites.bp, billing.bp, cabinet.bp, admin.bp, reports.bp, payments.bp):
        app.register_blueprint(blueprint)
    # Gateways and the payment provider prove themselves with signatures, not cookies.
    for blueprint in (ingest.bp, payments.callbacks):
        app.register_blueprint(blueprint)
        csrf.exempt(blueprint)
    register_flask_commands(app)
    return app
