"""The headers every response carries so a browser holds the pages to what they are: scripts and styles from
this site only (no inline script, no inline style), never framed by another site, no MIME sniffing, no full
URLs leaked to other sites, and — once served over https — https only from then on.

The card-payment page posts to LiqPay: its checkout origin (``LIQPAY_CHECKOUT_URL``) is the one other place
a form may go.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request

HSTS_SECONDS = 365 * 24 * 3600


def content_security_policy(form_targets: tuple[str, ...]) -> str:
    return "; ".join((
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
        "object-src 'none'", "base-uri 'self'", "frame-ancestors 'none'",
        "form-action " + " ".join(("'self'", *form_targets)),
    ))


def init_app(app: Flask) -> None:
    checkout = urlsplit(app.config.get("LIQPAY_CHECKOUT_URL") or "")
    origins = (f"{checkout.scheme}://{checkout.netloc}",) if checkout.scheme and checkout.netloc else ()
    policy = content_security_policy(origins)

    @app.after_request
    def protect(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", policy)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")  # for browsers that predate frame-ancestors
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_SECONDS}; includeSubDomains")
        return response
