"""Authentication of the web app: required on every request once configured; a non-loopback
bind without it is refused before the server starts."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from app.services.auth import COOKIE_NAME, AuthRequiredError
from app.web import create_app, serve_app
from storage.settings import load_settings


@pytest.fixture
def settings(store):
    return load_settings()


def client_for(settings, **auth):
    app = create_app(dataclasses.replace(settings, **auth))
    return app.server.test_client()


def test_loopback_without_auth_is_open(settings):
    client = client_for(settings)
    assert client.get("/").status_code == 200
    assert client.get("/_dash-layout").status_code == 200


def test_non_loopback_without_auth_refuses_to_start(settings):
    app = create_app(settings)
    with pytest.raises(AuthRequiredError, match="HEADLAB_AUTH_TOKEN"):
        serve_app(app, host="0.0.0.0", port=1)


@pytest.mark.parametrize("path", ["/", "/_dash-layout", "/_dash-dependencies", "/heads"])
def test_token_is_required_on_every_request(settings, path):
    client = client_for(settings, auth_token="s3cret")
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_token_in_query_once_then_cookie(settings):
    client = client_for(settings, auth_token="s3cret")
    first = client.get("/heads?run=3&token=s3cret")
    assert first.status_code == 302
    assert first.headers["Location"].endswith("/heads?run=3")  # token dropped from the URL
    cookie = first.headers["Set-Cookie"]
    assert COOKIE_NAME in cookie and "s3cret" not in cookie and "HttpOnly" in cookie
    assert client.get("/heads?run=3").status_code == 200  # the cookie now authenticates
    assert client_for(settings, auth_token="s3cret").get("/?token=nope").status_code == 401


def test_basic_auth(settings):
    client = client_for(settings, basic_auth="ada:lovelace")
    denied = client.get("/")
    assert denied.status_code == 401 and "Basic" in denied.headers["WWW-Authenticate"]
    good = base64.b64encode(b"ada:lovelace").decode()
    bad = base64.b64encode(b"ada:babbage").decode()
    assert client.get("/", headers={"Authorization": f"Basic {good}"}).status_code == 200
    assert client.get("/", headers={"Authorization": f"Basic {bad}"}).status_code == 401
    assert client.get("/", headers={"Authorization": "Basic !!notbase64"}).status_code == 401
