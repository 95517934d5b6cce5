"""Job of the run kind ``path-patch``: every sender head into every receiver set, and the
sender × receiver grid (docs/patching.md, "Path patching").

Receiver sets, named by the metric suffix of their rows:

- ``q``, ``k``, ``v``: that input of every chosen receiver head at once (a grouped-query
  model's k/v: the receivers' KV heads), and ``qkv`` (the chosen inputs together) when more
  than one input is chosen;
- ``logits``: the final residual stream (when ``logits`` is a receiver).

Rows (aggregate, layer/head = the sender): ``path_<set>`` the normalised effect
``(m − m_base) / (m_clean − m_corrupt)`` and ``path_<set>_delta`` the raw ``m − m_base``. A
sender at or after every receiver of a set has no row for it (no such path exists).

The summary holds the baseline, the sets' channels, the grid (``senders``, ``receivers`` —
``a{L}.h{H}<q|k|v>`` or ``logits`` — and ``values`` / ``delta``, null where the receiver is
not after the sender), the strongest paths, and the cost (model calls, prompt-batch forward
equivalents, wall time).
"""

from __future__ import annotations

import math
import time
from typing import Any

from analysis.circuits.graph import LOGITS, CircuitGraph
from analysis.configs.path_patch import PathPatchConfig
from analysis.heads_job import input_errors
from analysis.jobs import JobContext, JobError
from analysis.path_patching.paths import (
    PatchPath,
    PathPatcher,
    PathPatchError,
    check_heads,
    reaches,
    receiver_channel,
)
from analysis.prompt_batch import build_pair_batch
from storage.records import HeadResultIn, RunOutput


def receiver_sets(graph: CircuitGraph, cfg: PathPatchConfig) -> dict[str, list[str]]:
    """Set name → its graph channels (deduplicated: grouped-query receivers share KV heads)."""
    heads = [r for r in cfg.receivers if r != LOGITS]
    sets: dict[str, list[str]] = {}
    if heads:
        for kind in cfg.channels:
            sets[kind] = list(dict.fromkeys(receiver_channel(graph, r, kind) for r in heads))
        if len(cfg.channels) > 1:
            sets["".join(cfg.channels)] = [c for kind in cfg.channels for c in sets[kind]]
    if LOGITS in cfg.receivers:
        sets[LOGITS] = [LOGITS]
    return sets


def grid_receivers(graph: CircuitGraph, cfg: PathPatchConfig) -> list[tuple[str, str]]:
    """(label, graph channel) of every single receiver input, in receiver then q/k/v order."""
    out = []
    for r in cfg.receivers:
        if r == LOGITS:
            out.append((LOGITS, LOGITS))
        else:
            out += [(f"{r}<{kind}>", receiver_channel(graph, r, kind)) for kind in cfg.channels]
    return out


def all_heads(graph: CircuitGraph) -> list[str]:
    return [f"a{layer}.h{h}" for layer in range(graph.n_layers) for h in range(graph.n_heads)]


def _path(graph: CircuitGraph, sender: str, channels: list[str]) -> PatchPath | None:
    reached = tuple(c for c in channels if reaches(graph, sender, c))
    return PatchPath(sender, reached) if reached else None


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def path_patch_job(ctx: JobContext) -> RunOutput:
    t_start = time.perf_counter()
    cfg = ctx.config_as(PathPatchConfig)
    model = ctx.model()
    with input_errors():
        batch = build_pair_batch(model, ctx.pairs()[: cfg.max_pairs])
    ctx.progress(0.02, f"clean and corrupted runs over {batch.n_pairs} prompts")
    try:
        with input_errors():
            pp = PathPatcher.build(model, batch, cfg.metric, cfg.direction)
        graph = pp.graph
        check_heads(graph, cfg.senders, "sender")
        check_heads(graph, [r for r in cfg.receivers if r != LOGITS], "receiver")
    except PathPatchError as exc:
        raise JobError(str(exc)) from None
    senders = cfg.senders or all_heads(graph)
    sets = receiver_sets(graph, cfg)
    singles = grid_receivers(graph, cfg) if cfg.grid else []

    wanted: dict[PatchPath, None] = {}  # every distinct path once, in order
    set_paths = {(s, name): _path(graph, s, chs) for s in senders for name, chs in sets.items()}
    grid_paths = {(s, label): _path(graph, s, [ch]) for s in senders for label, ch in singles}
    for path in [*set_paths.values(), *grid_paths.values()]:
        if path is not None:
            wanted[path] = None
    paths = list(wanted)
    if not paths:
        raise JobError(
            "no sender is before any receiver: a receiver head must be in a later layer than "
            "the sender (or use logits)"
        )

    t0 = time.perf_counter()
    stage = ctx.stage(0.05, 0.97)
    stage(0.0, f"{len(paths)} paths ({cfg.method})")
    with input_errors():
        run = pp.fast if cfg.method == "fast" else pp.exact
        metrics = run(paths, stage)
    wall = time.perf_counter() - t0
    effect = pp.normalise(metrics)
    by_path = {
        p: (float(effect[i]), float(metrics[i] - pp.base_metric)) for i, p in enumerate(paths)
    }

    rows: list[HeadResultIn] = []
    for (sender, name), path in set_paths.items():
        if path is None:
            continue
        layer, head = (int(part[1:]) for part in sender.split("."))
        norm, delta = by_path[path]
        rows.append(HeadResultIn(f"path_{name}", layer, head, norm))
        rows.append(HeadResultIn(f"path_{name}_delta", layer, head, delta))

    grid = None
    if cfg.grid:

        def cell(s: str, label: str, k: int) -> float | None:
            path = grid_paths[(s, label)]
            return None if path is None else _finite(by_path[path][k])

        grid = {
            "senders": senders,
            "receivers": [label for label, _ in singles],
            "values": [[cell(s, label, 0) for label, _ in singles] for s in senders],
            "delta": [[cell(s, label, 1) for label, _ in singles] for s in senders],
        }
    ranked = sorted(
        ((s, name, by_path[p][0]) for (s, name), p in set_paths.items() if p is not None),
        key=lambda t: -abs(t[2]),
    )
    ctx.progress(1.0, "done")
    summary: dict[str, Any] = {
        "metric": cfg.metric, "direction": cfg.direction, "method": cfg.method,
        "n_prompts": batch.n_pairs,
        "metric_clean": pp.baseline.clean, "metric_corrupt": pp.baseline.corrupt,
        "metric_base": pp.base_metric,
        "effect": "(m - m_base) / (m_clean - m_corrupt)",
        "senders": senders, "receivers": list(cfg.receivers), "channels": list(cfg.channels),
        "sets": sets,
        "grid": grid,
        "top_paths": [{"sender": s, "receivers": n, "effect": _finite(v)}
                      for s, n, v in ranked[:10]],
        "cost": {
            "paths": len(paths), "model_calls": pp.counter.forwards,
            "prompt_batch_forwards": pp.counter.prompt_batches,
            "paths_per_model_call": len(paths) / max(1, pp.counter.forwards),
            "fast_path": None if cfg.method == "exact" else (
                "edge masks (the model cannot be replayed)" if not pp.replayed
                else "direct inputs + replay from the receivers' layer"
            ),
            "patch_wall_s": wall,
        },
        "wall_s": time.perf_counter() - t_start,
    }  # fmt: skip
    return RunOutput(head_results=rows, summary=summary)
