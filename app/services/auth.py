"""Request authentication for the web workbench (a Flask ``before_request`` hook).

When ``HEADLAB_AUTH_TOKEN`` or ``HEADLAB_BASIC_AUTH`` (``user:password``) is set, every request
must carry one of:

- ``Authorization: Bearer <token>``;
- ``?token=<token>`` in the URL, once: the response sets an HttpOnly session cookie and
  redirects to the same URL without the token;
- the session cookie from the previous point: a timestamp signed (itsdangerous) with this
  install's secret (``$HEADLAB_HOME/secret_key``, created once, mode 0600) salted with a digest
  of the current token, so it never contains the token, expires after
  ``HEADLAB_SESSION_HOURS``, differs per login and dies when the token changes;
- ``Authorization: Basic`` with the configured user and password.

Comparisons are constant-time. Weak settings are refused when the app is built
(``check_auth_settings``: a token under ``MIN_TOKEN_CHARS`` characters, a basic-auth value
that is not ``user:password`` with a password of ``MIN_PASSWORD_CHARS``+), and binding to a
non-loopback address without either setting is refused before the server starts
(``require_auth_for_host``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path
from urllib.parse import urlencode

import flask
from itsdangerous import BadSignature, TimestampSigner
from werkzeug.wrappers import Response as WerkzeugResponse

from storage.settings import Settings

COOKIE_NAME = "headlab_session"
MIN_TOKEN_CHARS = 16
MIN_PASSWORD_CHARS = 8
SECRET_FILE = "secret_key"


class AuthRequiredError(RuntimeError):
    """Serving on a non-loopback address without any authentication setting, or with a weak
    or malformed one."""


def check_auth_settings(settings: Settings) -> None:
    """Refuse a token or basic-auth value too weak or malformed to protect anything."""
    hint = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"
    token = settings.auth_token
    if token is not None and len(token.strip()) < MIN_TOKEN_CHARS:
        raise AuthRequiredError(
            f"HEADLAB_AUTH_TOKEN has {len(token.strip())} characters; use at least "
            f"{MIN_TOKEN_CHARS} (e.g. the output of `{hint}`)"
        )
    basic = settings.basic_auth
    if basic is not None:
        user, sep, password = basic.partition(":")
        if not sep or not user.strip():
            raise AuthRequiredError(
                "HEADLAB_BASIC_AUTH must be user:password (a non-empty user, a colon, a password)"
            )
        if len(password) < MIN_PASSWORD_CHARS:
            raise AuthRequiredError(
                f"HEADLAB_BASIC_AUTH: the password has {len(password)} characters; use at least "
                f"{MIN_PASSWORD_CHARS}"
            )


def install_secret(home: Path) -> bytes:
    """This install's cookie-signing secret, created (mode 0600) the first time it is needed."""
    path = home / SECRET_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


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


def session_signer(settings: Settings, token: str) -> TimestampSigner:
    """Signs session cookies; the salt is a digest of ``token``, so a new token ends them all."""
    salt = hashlib.sha256(b"headlab-session:" + token.encode()).hexdigest()
    return TimestampSigner(install_secret(settings.home), salt=salt)


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


def _token_ok(request: flask.Request, token: str, signer: TimestampSigner, max_age: int) -> bool:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and _same(header[7:].strip(), token):
        return True
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie is None:
        return False
    try:
        signer.unsign(cookie, max_age=max_age)
    except BadSignature:  # also SignatureExpired
        return False
    return True


def _redirect_without_token(
    request: flask.Request, signer: TimestampSigner, max_age: int
) -> WerkzeugResponse:
    query = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
    target = request.path + (f"?{urlencode(query)}" if query else "")
    response = flask.redirect(target, code=302)
    value = signer.sign(secrets.token_hex(8)).decode()
    response.set_cookie(
        COOKIE_NAME, value, httponly=True, samesite="Lax", max_age=max_age, path="/"
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


def check_request(
    request: flask.Request, settings: Settings, signer: TimestampSigner | None
) -> WerkzeugResponse | None:
    """None when the request may proceed, else the response to send instead."""
    if not auth_configured(settings):
        return None
    token = settings.auth_token
    if token and signer is not None:
        max_age = int(settings.session_hours * 3600)
        if _token_ok(request, token, signer, max_age):
            return None
        given = request.args.get("token")
        if given is not None and _same(given, token):
            return _redirect_without_token(request, signer, max_age)
    if settings.basic_auth and _basic_ok(
        request.headers.get("Authorization", ""), settings.basic_auth
    ):
        return None
    return _unauthorized(settings)


def install_auth(server: flask.Flask, settings: Settings) -> None:
    """Require authentication on every request when an auth setting is present; weak settings
    are refused here (``AuthRequiredError``)."""
    check_auth_settings(settings)
    signer = session_signer(settings, settings.auth_token) if settings.auth_token else None

    @server.before_request
    def _authenticate() -> WerkzeugResponse | None:
        return check_request(flask.request, settings, signer)
