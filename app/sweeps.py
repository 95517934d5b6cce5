"""Sweeps: one analysis fanned out over models × prompt sets × option values, as one sweep record
with child runs. The CLI (``headlab sweep``), the Python API and the web Launch page's sweep form
all build sweeps here.

A sweep spec names the run ``kind``, the ``models``, the ``prompt_sets`` (empty for kinds that
take none), ``fixed`` options for every run and ``vary``: option → list of values, crossed. Every
child config is validated before anything is stored, and the sweep and all its runs are queued in
one transaction, so a bad value anywhere stores nothing. Child runs are ordinary queued runs:
local workers and the Ray executor run them like any other.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from analysis.configs import ConfigError, RunConfigBase
from analysis.provenance import code_version, package_versions
from app.launching import LaunchRefused, analysis_kinds, make_config, stored_set_id
from storage.records import RunRecord, SweepChild, SweepRecord
from storage.store import ResultStore

MAX_RUNS = 500


@dataclass(frozen=True)
class SweepSpec:
    kind: str
    models: list[str]
    prompt_sets: list[str] = field(default_factory=list)
    fixed: dict[str, Any] = field(default_factory=dict)
    vary: dict[str, list[Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "models": self.models,
            "prompt_sets": self.prompt_sets,
            "fixed": self.fixed,
            "vary": self.vary,
        }

    def size(self) -> int:
        n = len(self.models) * max(1, len(self.prompt_sets))
        for values in self.vary.values():
            n *= len(values)
        return n


def parse_value(text: str) -> Any:
    """An option value as typed: JSON where it parses (numbers, true/false, lists), else text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items: list[str], what: str, many: bool) -> dict[str, Any]:
    """``key=value`` items (``many``: ``key=v1,v2,…``) as a dict; LaunchRefused naming the item."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise LaunchRefused(f"{what} {item!r}: write it as option=value")
        if key in out:
            raise LaunchRefused(f"{what} names {key!r} twice; give each option once")
        out[key] = [parse_value(v) for v in value.split(",")] if many else parse_value(value)
    return out


def child_configs(spec: SweepSpec) -> list[RunConfigBase]:
    """Every run of the sweep, validated; LaunchRefused names the first bad combination."""
    if spec.kind not in analysis_kinds():
        raise LaunchRefused(f"unknown run kind {spec.kind!r}; use one of {analysis_kinds()}")
    if not spec.models:
        raise LaunchRefused("a sweep needs at least one --model")
    for key, values in spec.vary.items():
        if not values:
            raise LaunchRefused(f"--vary {key}: give at least one value")
        if key in spec.fixed or key in ("model", "prompt_set", "kind"):
            raise LaunchRefused(f"--vary {key}: it is also fixed; vary or fix it, not both")
    if spec.size() > MAX_RUNS:
        raise LaunchRefused(
            f"the sweep would queue {spec.size()} runs, more than {MAX_RUNS}; sweep fewer values"
        )
    keys = list(spec.vary)
    prompt_sets: list[str | None] = list(spec.prompt_sets) or [None]
    configs = []
    for model in spec.models:
        for prompt_set in prompt_sets:
            for combo in itertools.product(*(spec.vary[k] for k in keys)):
                options = {**spec.fixed, **dict(zip(keys, combo, strict=True))}
                try:
                    configs.append(make_config(spec.kind, model, prompt_set, options))
                except ConfigError as exc:
                    shown = ", ".join(f"{k}={v!r}" for k, v in options.items() if k in spec.vary)
                    where = f"model {model}" + (f", prompts {prompt_set}" if prompt_set else "")
                    raise LaunchRefused(f"{where}{', ' + shown if shown else ''}: {exc}") from None
    return configs


def enqueue_sweep(
    store: ResultStore, spec: SweepSpec, name: str | None = None
) -> tuple[SweepRecord, list[RunRecord]]:
    """Validate every run of ``spec`` and queue them all with the sweep record (all or none)."""
    configs = child_configs(spec)
    prompt_ids = {name: stored_set_id(store, name) for name in spec.prompt_sets}
    versions, code = package_versions(), code_version()
    children = [
        SweepChild(
            config.model_dump(mode="json"),
            config.model,
            prompt_ids[config.prompt_set] if config.prompt_set is not None else None,
            versions,
            code,
        )
        for config in configs
    ]
    name = name or default_name(store, spec)
    return store.enqueue_sweep(name, spec.kind, spec.as_json(), children)


def default_name(store: ResultStore, spec: SweepSpec) -> str:
    """``<kind>-sweep-<n>``, numbered after the sweeps already stored."""
    taken = {s.name for s in store.list_sweeps(limit=10_000)}
    n = 1
    while f"{spec.kind}-sweep-{n}" in taken:
        n += 1
    return f"{spec.kind}-sweep-{n}"


def varied_values(spec: dict[str, Any], run: RunRecord) -> dict[str, Any]:
    """What sets this run apart within its sweep: model, prompt set and the varied options."""
    out: dict[str, Any] = {}
    if len(spec.get("models", [])) > 1:
        out["model"] = run.model_spec
    if len(spec.get("prompt_sets", [])) > 1:
        out["prompt_set"] = run.config.get("prompt_set")
    for key in spec.get("vary", {}):
        out[key] = run.config.get(key)
    return out


def sweep_label(spec: dict[str, Any], run: RunRecord) -> str:
    """A short label of a child run: ``#12 method=eap, prompt_set=ioi``."""
    varied = varied_values(spec, run)
    text = ", ".join(f"{k}={v}" for k, v in varied.items())
    return f"#{run.id} {text}".strip()
