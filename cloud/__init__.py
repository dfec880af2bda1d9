"""Balans cloud: the Flask application factory (``flask --app cloud run`` or ``balans cloud serve``)."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from cloud.config import DEFAULTS, validate

csrf = CSRFProtect()


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

    from cloud import admin, api, auth, cabinet, dashboard, db, i18n, reports_views

    db.init_app(app)
    csrf.init_app(app)
    i18n.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(cabinet.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(reports_views.bp)
    from cloud import payments_views

    app.register_blueprint(payments_views.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # gateways prove themselves with signatures, not cookies

    from cloud.cli import register_flask_commands

    register_flask_commands(app)
    return app
