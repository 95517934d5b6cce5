"""requirements.lock is the dependency set the tests pass with: it covers pyproject.toml's bounds,
and the environment running these tests is exactly that set."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(r) for r in declared]


def test_every_declared_dependency_is_pinned_within_its_bounds() -> None:
    pins = _locked()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is in pyproject.toml but not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject.toml's {requirement}"
        )


def test_the_lock_pins_nothing_for_a_dependency_pyproject_dropped() -> None:
    declared = {canonicalize_name(r.name) for r in _declared()}
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    stale = []
    for i, line in enumerate(lines):
        match = re.match(r"^([A-Za-z0-9_.\-]+)==", line)
        if not match:
            continue
        vias = []
        for comment in lines[i + 1 :]:
            if not comment.startswith("    #"):
                break
            vias.append(comment.removeprefix("    #").strip().removeprefix("via").strip())
        if vias == ["headlab (pyproject.toml)"] and canonicalize_name(match[1]) not in declared:
            stale.append(match[1])
    assert not stale, f"requirements.lock still pins {stale}: run `make lock`"


def test_torch_is_the_pinned_cpu_build() -> None:
    torch = _locked()["torch"]
    assert torch.public == "2.13.0" and torch.local in (None, "cpu")


def test_the_lock_is_what_make_lock_writes() -> None:
    header = (ROOT / "requirements.lock").read_text()
    recipe = (ROOT / "Makefile").read_text().split("\nlock:", 1)[1]
    for flag in ("--extra", "--strip-extras", "--no-emit-index-url", "--no-emit-find-links"):
        assert flag in recipe
        assert flag in header, f"requirements.lock was not written by `make lock` ({flag} missing)"


def test_the_running_environment_is_the_locked_set() -> None:
    drift = []
    for name, version in _locked().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            drift.append(f"{name} (locked {version}) is not installed")
            continue
        if installed != version:
            drift.append(f"{name}: installed {installed}, locked {version}")
    assert not drift, "run `make install` to restore the locked set: " + "; ".join(drift)
