"""docker-compose.yml: the services each deployment profile needs, wired as the README says.

Where ``docker compose`` exists, it validates the file too; everywhere, the file is parsed and
checked against the services, profiles, healthcheck, dependencies and port bindings it must have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HEADLAB_SERVICES = ("migrate", "demo", "web", "worker")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_default_profile_runs_web_and_worker_on_the_data_volume(compose) -> None:
    services = compose["services"]
    for name in HEADLAB_SERVICES:
        service = services[name]
        assert "profiles" not in service, f"{name} must run without a profile"
        assert service["build"] == "."
        assert "headlab-data:/data" in service["volumes"]
        assert "HEADLAB_DB" in service["environment"], f"{name} must pass HEADLAB_DB through"
    assert services["web"]["command"][:2] == ["headlab", "serve"]
    assert "--workers" in services["web"]["command"]
    assert services["worker"]["command"] == ["headlab", "worker"]
    assert "HEADLAB_AUTH_TOKEN:?" in services["web"]["environment"]["HEADLAB_AUTH_TOKEN"]
    assert services["demo"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


def test_postgres_profile_has_a_healthy_database_first(compose) -> None:
    services = compose["services"]
    postgres = services["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "POSTGRES_PASSWORD" in postgres["environment"]
    wait = services["migrate"]["depends_on"]["postgres"]
    assert wait == {"condition": "service_healthy", "required": False}
    assert "postgres-data" in compose["volumes"]


def test_ray_profile_has_a_head_a_gpu_worker_and_the_dispatcher(compose) -> None:
    services = compose["services"]
    for name in ("ray-head", "ray-gpu-worker", "ray-dispatcher"):
        assert services[name]["profiles"] == ["ray"]
        assert "headlab-data:/data" in services[name]["volumes"]
    assert services["ray-head"]["command"][:3] == ["ray", "start", "--head"]
    gpu = services["ray-gpu-worker"]
    assert "--address=ray-head:6379" in gpu["command"] and "--num-gpus=1" in gpu["command"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["count"] == 1
    assert "cu" in gpu["build"]["args"]["TORCH_INDEX"].rsplit("/", 1)[-1]
    dispatcher = services["ray-dispatcher"]["command"]
    assert dispatcher[:4] == ["headlab", "worker", "--executor", "ray"]
    assert dispatcher[dispatcher.index("--ray-address") + 1] == "ray-head:6379"
    assert services["worker"]["deploy"]["replicas"] == "${HEADLAB_LOCAL_WORKERS:-1}"


def test_the_image_takes_a_torch_index_and_holds_every_package(compose) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in dockerfile
    for package in ("app", "analysis", "storage", "headlab", "assets"):
        assert f"COPY {package} ./{package}" in dockerfile


def test_every_port_is_bound_to_loopback(compose) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="docker compose is not installed; the file is checked by parsing above",
)
def test_docker_compose_accepts_every_profile() -> None:
    env = {**os.environ, "HEADLAB_AUTH_TOKEN": "x" * 20, "HEADLAB_PG_PASSWORD": "pw"}
    for profile in ([], ["--profile", "postgres"], ["--profile", "ray"]):
        result = subprocess.run(
            ["docker", "compose", *profile, "config", "--quiet"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
