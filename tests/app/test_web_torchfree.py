"""The web process never imports torch: not on import, not when building every page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from pathlib import Path
from storage import migrate
from storage.settings import load_settings
from storage.store import ResultStore
from tests.browser.seeding import seed_all
import app.web
from app.pages import routes
from app.services.context import WebContext
settings = load_settings()
migrate.upgrade(settings.db_url)
store = ResultStore.from_settings(settings)
seeded = seed_all(store, Path(settings.home) / "work")
web = app.web.create_app(settings)
ctx = WebContext.open(settings, store)
built = []
for route in routes():
    route.build(ctx, {})
    built.append(route.path)
for query in ({"run": str(seeded.patch)}, {"run": str(seeded.dla)}):
    [r for r in routes() if r.path == "/heads"][0].build(ctx, query)
print(json.dumps({"torch": "torch" in sys.modules, "pages": built,
                  "heavy": sorted(m for m in ("transformer_lens", "sae_lens", "transformers")
                                  if m in sys.modules)}))
"""


def test_web_app_and_every_page_build_without_torch(headlab_env):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=headlab_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["torch"] is False
    assert report["heavy"] == []
    assert len(report["pages"]) == 11
