"""Global settings, read from ``HEADLAB_*`` environment variables in one place.

- ``HEADLAB_HOME``: data directory (default ``./headlab-data``). Artifacts live under
  ``$HEADLAB_HOME/artifacts``; the default SQLite database is ``$HEADLAB_HOME/headlab.db``.
- ``HEADLAB_DB``: SQLAlchemy URL (default ``sqlite:///$HEADLAB_HOME/headlab.db``).
- ``HEADLAB_AUTH_TOKEN`` / ``HEADLAB_BASIC_AUTH`` (``user:password``): web authentication,
  required when the web app binds to anything but loopback.
- ``HEADLAB_STALE_AFTER_S``: heartbeat age after which a RUNNING run is considered dead.
- ``HEADLAB_ALLOWED_HOSTS``: comma-separated host names the web app answers to (the request's
  ``Host``); loopback names are always allowed, ``*`` allows any.
- ``HEADLAB_MAX_BODY_MB``: largest request body the web app reads (default 48; 413 beyond).
- ``HEADLAB_SESSION_HOURS``: lifetime of a login cookie (default 12).
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
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = 48 * 1024 * 1024
    session_hours: float = 12.0

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
        allowed_hosts=tuple(
            h.strip().lower() for h in env.get("HEADLAB_ALLOWED_HOSTS", "").split(",") if h.strip()
        ),
        max_body_bytes=int(float(env.get("HEADLAB_MAX_BODY_MB", "48")) * 1024 * 1024),
        session_hours=float(env.get("HEADLAB_SESSION_HOURS", "12")),
    )
