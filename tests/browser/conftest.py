"""One seeded store, one real server and one headless Chromium for the whole browser session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.seeding import Seeded, seed_all
from tests.browser.server import browser_context, chromium_available, serve


@pytest.fixture(scope="session")
def web_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("web-home")
    env = dict(os.environ)
    env.update(HEADLAB_HOME=str(home), PYTHONUNBUFFERED="1", TORCH_NUM_THREADS="1")
    env.pop("HEADLAB_DB", None)
    env.pop("HEADLAB_AUTH_TOKEN", None)
    env.pop("HEADLAB_BASIC_AUTH", None)
    return env


@pytest.fixture(scope="session")
def web_store(web_env: dict[str, str]):
    from storage import migrate
    from storage.settings import load_settings
    from storage.store import ResultStore

    settings = load_settings(web_env)
    migrate.upgrade(settings.db_url)
    return ResultStore.from_settings(settings)


@pytest.fixture(scope="session")
def seeded(web_store, web_env: dict[str, str]) -> Seeded:
    return seed_all(web_store, Path(web_env["HEADLAB_HOME"]) / "seed-work")


@pytest.fixture(scope="session")
def base_url(seeded: Seeded, web_env: dict[str, str]) -> Iterator[str]:
    with serve(web_env) as url:
        yield url


@pytest.fixture(scope="session")
def browser(base_url: str) -> Iterator[object]:
    if not chromium_available():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium")
    with browser_context() as context:
        yield context


class ConsoleLog:
    def __init__(self, page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


@pytest.fixture
def page(browser, base_url: str):
    tab = browser.new_page()
    tab.set_default_timeout(15_000)
    tab.console = ConsoleLog(tab)  # type: ignore[attr-defined]
    yield tab
    tab.close()
