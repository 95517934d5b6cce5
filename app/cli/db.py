"""``headlab db``: create, upgrade and check the database schema."""

from __future__ import annotations

import typer

from app.cli.context import store_errors
from app.cli.output import CliError, emit_json
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
def check(
    artifacts: bool = typer.Option(
        True, help="Also verify every artifact file (size, sha256) and look for orphans."
    ),
    remove_orphans: bool = typer.Option(
        False,
        help="Delete stored files that no run references and what crashed runs left behind "
        "(temp files, work folders).",
    ),
    json_out: bool = JSON,
) -> None:
    """Verify the schema is current and the artifact files are intact; exit non-zero naming
    each problem (and the fix) if not."""
    from storage.store import ResultStore

    settings = load_settings()
    with store_errors():
        migrate.check_schema(settings.db_url)
        revision = migrate.current_revision(settings.db_url)
        checked, problems, orphans, leftovers = 0, list[str](), list[str](), list[str]()
        if artifacts:
            store = ResultStore.from_settings(settings)
            if remove_orphans:
                found = store.recover_after_crashes(settings.stale_after_s)
                leftovers = found.files + found.temp_files + found.work_folders
            checked, problems, orphans = store.check_artifacts()
            if remove_orphans:
                store.remove_orphans(orphans)
    report = {
        "url": _safe_url(settings.db_url),
        "revision": revision,
        "artifacts_checked": checked,
        "problems": problems,
        "orphans": orphans,
        "orphans_removed": remove_orphans,
        "leftovers_removed": leftovers,
        "ok": not problems,
    }
    if json_out:
        emit_json(report)
    else:
        typer.echo(f"schema is current ({revision}); {checked} artifact file(s) checked")
        if orphans:
            done = "removed" if remove_orphans else "harmless; --remove-orphans deletes them"
            typer.echo(f"{len(orphans)} orphaned file(s) no run references ({done})")
        if leftovers:
            typer.echo(f"removed {len(leftovers)} file(s)/folder(s) left by ended runs")
        for problem in problems:
            typer.echo(f"problem: {problem}", err=True)
    if problems:
        raise CliError(f"{len(problems)} artifact problem(s); see above", 1)


def _safe_url(url: str) -> str:
    """The URL without a password, for printing."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 — printing only; check/upgrade report bad URLs themselves
        return "<unparseable url>"
