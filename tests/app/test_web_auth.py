"""Authentication of the web app: required on every request once configured; a non-loopback
bind without it, and weak or malformed settings, are refused before the server starts; session
cookies are signed with the install's secret, expire and die when the token changes."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from app.services.auth import COOKIE_NAME, AuthRequiredError
from app.web import create_app, serve_app
from storage.settings import load_settings

TOKEN = "correct-horse-battery-staple"


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
    client = client_for(settings, auth_token=TOKEN)
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_token_in_query_once_then_cookie(settings):
    client = client_for(settings, auth_token=TOKEN)
    first = client.get(f"/heads?run=3&token={TOKEN}")
    assert first.status_code == 302
    assert first.headers["Location"].endswith("/heads?run=3")  # token dropped from the URL
    cookie = first.headers["Set-Cookie"]
    assert COOKIE_NAME in cookie and TOKEN not in cookie and "HttpOnly" in cookie
    assert client.get("/heads?run=3").status_code == 200  # the cookie now authenticates
    assert client_for(settings, auth_token=TOKEN).get("/?token=nope").status_code == 401


def test_basic_auth(settings):
    client = client_for(settings, basic_auth="ada:lovelace-1843")
    denied = client.get("/")
    assert denied.status_code == 401 and "Basic" in denied.headers["WWW-Authenticate"]
    good = base64.b64encode(b"ada:lovelace-1843").decode()
    bad = base64.b64encode(b"ada:babbage-1822").decode()
    assert client.get("/", headers={"Authorization": f"Basic {good}"}).status_code == 200
    assert client.get("/", headers={"Authorization": f"Basic {bad}"}).status_code == 401
    assert client.get("/", headers={"Authorization": "Basic !!notbase64"}).status_code == 401


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"auth_token": "x"}, "HEADLAB_AUTH_TOKEN has 1 characters; use at least 16"),
        ({"basic_auth": "adalovelace1843"}, "must be user:password"),
        ({"basic_auth": ":lovelace-1843"}, "must be user:password"),
        ({"basic_auth": "ada:short"}, "the password has 5 characters"),
    ],
)
def test_weak_or_malformed_auth_settings_are_refused(settings, auth, message):
    with pytest.raises(AuthRequiredError, match=message):
        create_app(dataclasses.replace(settings, **auth))


def login(client):
    response = client.get(f"/?token={TOKEN}")
    assert response.status_code == 302
    return response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]


def test_session_cookies_are_per_login_and_signed_with_the_install_secret(settings):
    first = login(client_for(settings, auth_token=TOKEN))
    second = login(client_for(settings, auth_token=TOKEN))
    assert first != second  # not a function of the token alone
    secret = (settings.home / "secret_key").read_text().strip()
    assert len(secret) == 64 and secret not in first
    assert (settings.home / "secret_key").stat().st_mode & 0o777 == 0o600
    forged = first[:-4] + ("AAAA" if not first.endswith("AAAA") else "BBBB")
    fresh = client_for(settings, auth_token=TOKEN)
    fresh.set_cookie(COOKIE_NAME, forged)
    assert fresh.get("/").status_code == 401


def test_session_cookie_dies_when_the_token_changes(settings):
    cookie = login(client_for(settings, auth_token=TOKEN))
    same = client_for(settings, auth_token=TOKEN)
    same.set_cookie(COOKIE_NAME, cookie)
    assert same.get("/").status_code == 200
    rotated = client_for(settings, auth_token=TOKEN + "-rotated")
    rotated.set_cookie(COOKIE_NAME, cookie)
    assert rotated.get("/").status_code == 401


def test_session_cookie_expires(settings):
    cookie = login(client_for(settings, auth_token=TOKEN))
    expired = client_for(settings, auth_token=TOKEN, session_hours=-1.0)
    expired.set_cookie(COOKIE_NAME, cookie)
    assert expired.get("/").status_code == 401
