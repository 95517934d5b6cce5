"""``headlab serve`` (web app + local workers) and ``headlab worker`` (one worker process)."""

from __future__ import annotations

import logging
import signal
import sys
import threading

import typer

from app.cli.context import open_store
from app.cli.output import CliError
from storage.settings import Settings, load_settings

log = logging.getLogger(__name__)


def require_auth_for(host: str, settings: Settings) -> None:
    """Fail fast, before any worker starts, when a non-loopback host has no auth setting or
    an auth setting is weak or malformed."""
    from app.services.auth import AuthRequiredError, check_auth_settings, require_auth_for_host

    try:
        check_auth_settings(settings)
        require_auth_for_host(host, settings)
    except AuthRequiredError as exc:
        raise CliError(str(exc)) from None


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind; non-loopback needs auth."),
    port: int = typer.Option(8050, min=1, max=65535),
    workers: int = typer.Option(1, min=0, help="Local worker processes to start."),
    debug: bool = typer.Option(
        False, help="Werkzeug's development server with Dash debug mode (default: waitress)."
    ),
) -> None:
    """Serve the web workbench and run local workers."""
    from app.cli.supervisor import WorkerSupervisor
    from app.web import create_app, serve_app

    settings = load_settings()
    require_auth_for(host, settings)
    store = open_store(settings)
    supervisor = WorkerSupervisor(store, workers)
    # SIGTERM (docker stop, systemd) must unwind through `finally` so the workers are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    supervisor.start()
    try:
        web = create_app(settings)
        typer.echo(f"headlab: http://{host}:{port} ({workers} worker(s))", err=True)
        serve_app(web, host=host, port=port, debug=debug)
    finally:
        supervisor.stop()


def worker(
    once: bool = typer.Option(False, help="Run at most one queued run, then exit."),
    kinds: list[str] = typer.Option(None, "--kind", help="Only claim runs of these kinds."),
    heartbeat_s: float = typer.Option(2.0, min=0.1, help="Seconds between heartbeats."),
) -> None:
    """Run queued analyses (keeps the loaded model resident between runs)."""
    from analysis.worker import Worker

    logging.getLogger().setLevel(logging.INFO)
    settings = load_settings()
    store = open_store(settings)
    runner = Worker(
        store, kinds=kinds or None, heartbeat_s=heartbeat_s, stale_after_s=settings.stale_after_s
    )
    if once:
        runner.reap_and_claim()
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runner.run_forever(stop)


def register(root: typer.Typer) -> None:
    root.command()(serve)
    root.command()(worker)
