"""CSRF protection for every form (Flask-WTF), bound to the app in the factory."""

from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
