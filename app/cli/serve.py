"""``headlab serve`` (web app + local workers or a Ray dispatcher) and ``headlab worker`` (one
worker process, or with ``--executor ray`` a dispatcher running runs on Ray actors)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Literal

import typer

from app.cli.context import open_store
from app.cli.output import CliError
from storage.settings import Settings, load_settings
from storage.store import ResultStore

log = logging.getLogger(__name__)
Executor = Literal["local", "ray"]
EXECUTOR = typer.Option(
    "local", "--executor", help="local: worker processes here; ray: actors on a Ray cluster."
)
RAY_ADDRESS = typer.Option(
    None, "--ray-address", help="Ray cluster to join (e.g. 10.0.0.5:6379); default: a local one."
)


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
    workers: int = typer.Option(
        1, min=0, help="Local worker processes to start (with --executor ray: Ray actors)."
    ),
    debug: bool = typer.Option(
        False, help="Werkzeug's development server with Dash debug mode (default: waitress)."
    ),
    executor: Executor = EXECUTOR,
    ray_address: str | None = RAY_ADDRESS,
) -> None:
    """Serve the web workbench and run local workers (or a Ray dispatcher)."""
    from app.cli.supervisor import WorkerSupervisor
    from app.web import create_app, serve_app

    settings = load_settings()
    require_auth_for(host, settings)
    require_free_port(host, port)
    store = open_store(settings)
    if executor == "ray":
        options = ("--executor", "ray", "--actors", str(workers), *_address_option(ray_address))
        supervisor = WorkerSupervisor(store, 1 if workers else 0, worker_options=options)
    else:
        supervisor = WorkerSupervisor(store, workers)
    # SIGTERM (docker stop, systemd) must unwind through `finally` so the workers are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    supervisor.start()
    try:
        web = create_app(settings)
        what = f"{workers} Ray actor(s)" if executor == "ray" else f"{workers} worker(s)"
        typer.echo(f"headlab: http://{host}:{port} ({what})", err=True)
        serve_app(web, host=host, port=port, debug=debug)
    finally:
        supervisor.stop()


def worker(
    once: bool = typer.Option(False, help="Run at most one queued run, then exit."),
    kinds: list[str] = typer.Option(None, "--kind", help="Only claim runs of these kinds."),
    heartbeat_s: float = typer.Option(2.0, min=0.1, help="Seconds between heartbeats."),
    executor: Executor = EXECUTOR,
    ray_address: str | None = RAY_ADDRESS,
    actors: int = typer.Option(
        1, min=1, help="With --executor ray: the most Ray actors (runs in flight) at a time."
    ),
) -> None:
    """Run queued analyses (keeps the loaded model resident between runs)."""
    from analysis.worker import Worker

    logging.getLogger().setLevel(logging.INFO)
    settings = load_settings()
    store = open_store(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if executor == "ray":
        if once:
            raise CliError("--once is for local workers; a Ray dispatcher runs until stopped")
        _run_ray(store, settings, ray_address, actors, kinds, heartbeat_s, stop)
        return
    runner = Worker(
        store, kinds=kinds or None, heartbeat_s=heartbeat_s, stale_after_s=settings.stale_after_s
    )
    if once:
        runner.reap_and_claim()
        return
    runner.run_forever(stop)


def require_free_port(host: str, port: int) -> None:
    """Fail with one line naming the port when it cannot be bound (before workers start)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        message = f"--host {host!r} is not an address here ({exc.strerror}); use 127.0.0.1"
        raise CliError(message) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise CliError(
                f"cannot listen on {host}:{port}: {exc.strerror}; another server (an earlier "
                "`headlab serve`?) holds it: stop it or pass --port N"
            ) from None


def _address_option(address: str | None) -> tuple[str, ...]:
    return ("--ray-address", address) if address else ()


def _run_ray(
    store: ResultStore,
    settings: Settings,
    address: str | None,
    actors: int,
    kinds: list[str] | None,
    heartbeat_s: float,
    stop: threading.Event,
) -> None:
    from analysis.ray_executor import RayExecutor

    executor = RayExecutor(
        store,
        address=address,
        actors=actors,
        kinds=kinds or None,
        heartbeat_s=heartbeat_s,
        stale_after_s=settings.stale_after_s,
    )
    try:
        executor.run_forever(stop)
    except ConnectionError as exc:
        raise CliError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def register(root: typer.Typer) -> None:
    root.command()(serve)
    root.command()(worker)
