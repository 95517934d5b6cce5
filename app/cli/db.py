"""``headlab db``: create, upgrade and check the database schema."""

from __future__ import annotations

import typer

from app.cli.context import store_errors
from app.cli.output import emit_json
from storage import migrate
from storage.settings import load_settings

app = typer.Typer(help="Database schema: upgrade and check.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print one JSON object.")


@app.command()
def upgrade(json_out: bool = JSON) -> None:
    """Create the database or upgrade it to the newest schema."""
    settings = load_settings()
    with store_errors():
        before = migrate.current_revision(settings.db_url)
        migrate.upgrade(settings.db_url)
        after = migrate.current_revision(settings.db_url)
    result = {"url": _safe_url(settings.db_url), "from": before, "to": after}
    if json_out:
        emit_json(result)
    else:
        typer.echo(f"database at {result['url']}: {before or 'empty'} -> {after}")


@app.command()
def check(json_out: bool = JSON) -> None:
    """Verify the schema is current; exit non-zero with the fix if it is not."""
    settings = load_settings()
    with store_errors():
        migrate.check_schema(settings.db_url)
        revision = migrate.current_revision(settings.db_url)
    if json_out:
        emit_json({"url": _safe_url(settings.db_url), "revision": revision, "ok": True})
    else:
        typer.echo(f"schema is current ({revision})")


def _safe_url(url: str) -> str:
    """The URL without a password, for printing."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 — printing only; check/upgrade report bad URLs themselves
        return "<unparseable url>"
