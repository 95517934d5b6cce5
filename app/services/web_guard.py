"""What every request and response of the web workbench passes through, before auth and pages.

- **Allowed hosts**: the request's ``Host`` must be a loopback name, the address the server is
  bound to, or one of ``HEADLAB_ALLOWED_HOSTS`` (``*`` allows any) — else 400. A page on
  another site that resolves its own name to 127.0.0.1 (DNS rebinding) cannot drive a loopback
  workbench.
- **Same origin for state changes**: a POST/PUT/PATCH/DELETE whose ``Origin`` (or, without it,
  ``Referer``) is another origin, or that a browser marks ``Sec-Fetch-Site: cross-site``, gets
  403 (CSRF). Scripts and the CLI send none of these and are judged by auth alone.
- **Body limit**: a body over ``HEADLAB_MAX_BODY_MB`` is refused with 413 before it is read.
- **Security headers** on every response: a Content-Security-Policy (scripts from this origin
  only, plus the page's own inline scripts by hash, ``inline_script_hashes``; no framing),
  ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``,
  ``Cross-Origin-Opener-Policy: same-origin``.
- **Request logs without secrets**: ``redact`` blanks ``token=`` values in a logged line.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Callable
from urllib.parse import urlsplit

import flask
from werkzeug.exceptions import RequestEntityTooLarge

from storage.settings import Settings

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_ADDRESS = ("0.0.0.0", "::", "")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s\"']*", re.IGNORECASE)
# <script> without src= and not a JSON data block: the scripts a browser executes inline
_INLINE_SCRIPT = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>(.*?)</script>", re.DOTALL
)


def redact(text: str) -> str:
    """``text`` with every ``token=<value>`` blanked (for request logs)."""
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """A logging filter that redacts tokens from a record's message (Werkzeug's request log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


def host_name(host_header: str) -> str:
    """``Host`` header → lower-case host name without the port (``[::1]:8050`` → ``::1``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def allowed_hosts(settings: Settings) -> frozenset[str]:
    return frozenset(LOOPBACK_NAMES) | frozenset(settings.allowed_hosts)


def inline_script_hashes(html: str) -> frozenset[str]:
    """CSP hash sources (``'sha256-…'``) of the executable inline scripts of a page."""
    return frozenset(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )


def csp(script_hashes: frozenset[str]) -> str:
    """The Content-Security-Policy allowing this origin's scripts and ``script_hashes``."""
    return "; ".join(
        [
            "default-src 'self'",
            " ".join(["script-src 'self'", *sorted(script_hashes)]),
            "style-src 'self' 'unsafe-inline'",  # plotly and Dash components set inline styles
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _text(status: int, message: str) -> flask.Response:
    return flask.Response(f"headlab: {message}\n", status=status, mimetype="text/plain")


def cross_origin(request: flask.Request) -> bool:
    """A browser request from another origin (what CSRF needs)."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return True
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return False
    if origin == "null":
        return True
    parts = urlsplit(origin)
    return parts.netloc.lower() != request.host.lower() or parts.scheme != request.scheme


def install_guard(
    server: flask.Flask, settings: Settings, script_hashes: Callable[[], frozenset[str]]
) -> None:
    """Install the host check, CSRF check, body limit and headers on ``server`` (first hooks);
    ``script_hashes`` gives the hash sources of the page's inline scripts."""
    server.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    server.config["HEADLAB_ALLOWED_HOSTS"] = allowed_hosts(settings)
    limit_mb = settings.max_body_bytes / 2**20

    @server.before_request
    def _guard() -> flask.Response | None:
        request = flask.request
        hosts = server.config["HEADLAB_ALLOWED_HOSTS"]
        name = host_name(request.host)
        if "*" not in hosts and name not in hosts:
            return _text(
                400,
                f"host {name!r} is not allowed; set HEADLAB_ALLOWED_HOSTS={name} to serve under "
                "that name",
            )
        if request.method not in SAFE_METHODS and cross_origin(request):
            return _text(403, "cross-origin request refused (same-origin only)")
        length = request.content_length
        if length is not None and length > settings.max_body_bytes:
            return _text(413, f"request body over {limit_mb:g} MiB (HEADLAB_MAX_BODY_MB)")
        return None

    @server.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: RequestEntityTooLarge) -> flask.Response:
        return _text(413, f"request body over {limit_mb:g} MiB (HEADLAB_MAX_BODY_MB)")

    @server.after_request
    def _headers(response: flask.Response) -> flask.Response:
        response.headers.setdefault("Content-Security-Policy", csp(script_hashes()))
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # the layout reads its Referer
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        return response


def allow_bind_host(server: flask.Flask, bind_host: str) -> None:
    """Add the address the server binds to (when it is one address) to its allowed hosts."""
    if bind_host not in ANY_ADDRESS:
        hosts = server.config["HEADLAB_ALLOWED_HOSTS"]
        server.config["HEADLAB_ALLOWED_HOSTS"] = hosts | {host_name(bind_host)}
