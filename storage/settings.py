"""Global settings, read from ``HEADLAB_*`` environment variables in one place.

- ``HEADLAB_HOME``: data directory (default ``./headlab-data``). Artifacts live under
  ``$HEADLAB_HOME/artifacts``; the default SQLite database is ``$HEADLAB_HOME/headlab.db``.
- ``HEADLAB_DB``: SQLAlchemy URL (default ``sqlite:///$HEADLAB_HOME/headlab.db``).
- ``HEADLAB_AUTH_TOKEN`` / ``HEADLAB_BASIC_AUTH`` (``user:password``): web authentication,
  required when the web app binds to anything but loopback.
- ``HEADLAB_STALE_AFTER_S``: heartbeat age after which a RUNNING run is considered dead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    auth_token: str | None
    basic_auth: str | None
    stale_after_s: float

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    home = Path(env.get("HEADLAB_HOME", "headlab-data")).expanduser().resolve()
    db_url = env.get("HEADLAB_DB") or f"sqlite:///{home / 'headlab.db'}"
    return Settings(
        home=home,
        db_url=db_url,
        auth_token=env.get("HEADLAB_AUTH_TOKEN") or None,
        basic_auth=env.get("HEADLAB_BASIC_AUTH") or None,
        stale_after_s=float(env.get("HEADLAB_STALE_AFTER_S", "60")),
    )
