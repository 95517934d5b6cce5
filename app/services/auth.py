"""Request authentication for the web workbench (a Flask ``before_request`` hook).

When ``HEADLAB_AUTH_TOKEN`` or ``HEADLAB_BASIC_AUTH`` (``user:password``) is set, every request
must carry one of:

- ``Authorization: Bearer <token>``;
- ``?token=<token>`` in the URL, once: the response sets an HttpOnly cookie (an HMAC of the
  token, never the token itself) and redirects to the same URL without the token;
- the cookie from the previous point;
- ``Authorization: Basic`` with the configured user and password.

Comparisons are constant-time. Binding to a non-loopback address without either setting is
refused before the server starts (``require_auth_for_host``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from urllib.parse import urlencode

import flask
from werkzeug.wrappers import Response as WerkzeugResponse

from storage.settings import Settings

COOKIE_NAME = "headlab_session"


class AuthRequiredError(RuntimeError):
    """Serving on a non-loopback address without any authentication setting."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_configured(settings: Settings) -> bool:
    return bool(settings.auth_token or settings.basic_auth)


def require_auth_for_host(host: str, settings: Settings) -> None:
    if is_loopback(host) or auth_configured(settings):
        return
    raise AuthRequiredError(
        f"refusing to serve on {host} without authentication: set HEADLAB_AUTH_TOKEN=<token> "
        "or HEADLAB_BASIC_AUTH=<user:password>, or bind to 127.0.0.1"
    )


def _cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"headlab-web-session", hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _basic_ok(header: str, basic: str) -> bool:
    if not header.startswith("Basic "):
        return False
    try:
        given = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return False
    return _same(given, basic)


def _token_ok(request: flask.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and _same(header[7:].strip(), token):
        return True
    cookie = request.cookies.get(COOKIE_NAME)
    return cookie is not None and _same(cookie, _cookie_value(token))


def _redirect_without_token(request: flask.Request, token: str) -> WerkzeugResponse:
    query = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
    target = request.path + (f"?{urlencode(query)}" if query else "")
    response = flask.redirect(target, code=302)
    response.set_cookie(
        COOKIE_NAME, _cookie_value(token), httponly=True, samesite="Lax", max_age=30 * 86400
    )
    return response


def _unauthorized(settings: Settings) -> flask.Response:
    response = flask.Response(
        "headlab: authentication required (Authorization: Bearer <token>, ?token=<token>, "
        "or basic auth)\n",
        status=401,
        mimetype="text/plain",
    )
    if settings.basic_auth:
        response.headers["WWW-Authenticate"] = 'Basic realm="headlab"'
    return response


def check_request(request: flask.Request, settings: Settings) -> WerkzeugResponse | None:
    """None when the request may proceed, else the response to send instead."""
    if not auth_configured(settings):
        return None
    token = settings.auth_token
    if token:
        if _token_ok(request, token):
            return None
        given = request.args.get("token")
        if given is not None and _same(given, token):
            return _redirect_without_token(request, token)
    if settings.basic_auth and _basic_ok(
        request.headers.get("Authorization", ""), settings.basic_auth
    ):
        return None
    return _unauthorized(settings)


def install_auth(server: flask.Flask, settings: Settings) -> None:
    """Require authentication on every request when an auth setting is present."""

    @server.before_request
    def _authenticate() -> WerkzeugResponse | None:
        return check_request(flask.request, settings)
