"""The web guard on every request: allowed hosts, same-origin state changes, the body limit and
security headers (on the Flask app), and a real ``headlab serve`` (waitress) that answers
oversized bodies with 413 and never logs a token."""

from __future__ import annotations

import dataclasses
import http.client
import json
import subprocess

import pytest

from app.services.web_guard import host_name, redact
from app.web import create_app
from storage.settings import load_settings
from tests.browser.server import free_port, stop, wait_http
from tests.integration.cli import HEADLAB

TOKEN = "correct-horse-battery-staple"
UPDATE = "/_dash-update-component"


@pytest.fixture
def settings(store):
    return load_settings()


def client_for(settings, **changes):
    return create_app(dataclasses.replace(settings, **changes)).server.test_client()


@pytest.mark.parametrize(
    ("header", "name"),
    [("localhost:8050", "localhost"), ("[::1]:8050", "::1"), ("EXAMPLE.org", "example.org")],
)
def test_host_name(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize("host", ["127.0.0.1:8050", "localhost", "[::1]:8050"])
def test_loopback_hosts_are_served(settings, host):
    assert client_for(settings).get("/", headers={"Host": host}).status_code == 200


def test_other_hosts_get_400_naming_the_setting(settings):
    response = client_for(settings).get("/", headers={"Host": "attacker.example:8050"})
    assert response.status_code == 400
    assert "HEADLAB_ALLOWED_HOSTS=attacker.example" in response.text


def test_allowed_hosts_setting(settings):
    client = client_for(settings, allowed_hosts=("lab.example",))
    assert client.get("/", headers={"Host": "lab.example"}).status_code == 200
    assert client.get("/", headers={"Host": "other.example"}).status_code == 400
    anyone = client_for(settings, allowed_hosts=("*",))
    assert anyone.get("/", headers={"Host": "other.example"}).status_code == 200


def test_host_is_checked_before_auth(settings):
    client = client_for(settings, auth_token=TOKEN)
    headers = {"Host": "attacker.example", "Authorization": f"Bearer {TOKEN}"}
    assert client.get("/", headers=headers).status_code == 400


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://attacker.example"},
        {"Origin": "null"},
        {"Origin": "https://localhost"},  # another scheme is another origin
        {"Referer": "http://attacker.example/page"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_cross_origin_state_changes_are_refused(settings, headers):
    response = client_for(settings).post(UPDATE, json={}, headers=headers)
    assert response.status_code == 403
    assert "cross-origin" in response.text


def test_same_origin_and_scripts_may_post(settings):
    client = client_for(settings)
    same = client.post(UPDATE, json={}, headers={"Origin": "http://localhost"})
    assert same.status_code != 403
    assert client.post(UPDATE, json={}).status_code != 403  # no Origin: a script, not a browser


def test_security_headers_on_every_response(settings):
    client = client_for(settings)
    for path in ("/", "/_dash-layout", "/assets/style.css", "/no-such-page"):
        headers = client.get(path).headers
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        policy = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        assert "'unsafe-eval'" not in policy and "script-src 'self'" in policy


def test_oversized_body_gets_413_before_it_is_read(settings):
    client = client_for(settings, max_body_bytes=1024)
    response = client.post(UPDATE, data=b"x" * 4096, content_type="application/json")
    assert response.status_code == 413
    assert "HEADLAB_MAX_BODY_MB" in response.text


def test_redact():
    line = 'GET /heads?run=3&token=abc123 HTTP/1.1" 302 -'
    assert redact(line) == 'GET /heads?run=3&token=[redacted] HTTP/1.1" 302 -'


def request(port, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def declare_body(port, path, length, headers):
    """Announce a ``length``-byte body and send none: the server must answer from the header
    (sending the bytes would race the server closing the connection after its 413)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", path)
        for key, value in {**headers, "Content-Length": str(length)}.items():
            conn.putheader(key, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("debug", [False, True], ids=["waitress", "debug"])
def test_real_server_limits_bodies_and_never_logs_tokens(store, headlab_env, tmp_path, debug):
    port = free_port()
    env = {**headlab_env, "HEADLAB_AUTH_TOKEN": TOKEN, "HEADLAB_MAX_BODY_MB": "1"}
    log_path = tmp_path / "serve.log"
    args = [*HEADLAB, "serve", "--port", str(port), "--workers", "0"]
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [*args, *(["--debug"] if debug else [])], env=env, stdout=log, stderr=log
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/", server, timeout_s=120)
            status, _ = request(port, "GET", f"/heads?token={TOKEN}")
            assert status == 302
            auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            status, body = declare_body(port, UPDATE, 3 << 20, auth)
            assert status == 413, body
            status, _ = request(port, "POST", UPDATE, json.dumps({}).encode(), auth)
            assert status not in (401, 403, 413)
        finally:
            stop(server)
    assert TOKEN not in log_path.read_text()
