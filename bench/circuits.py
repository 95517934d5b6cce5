"""Circuit-discovery benchmark: every method side by side, printed as one table.

    .venv/bin/python bench/circuits.py [--pairs 16] [--skip-gpt2] [--skip-zoo] [--qk-reference]
        [--gpt2-budget-s 1200] [--gpt2-tau 0.001] [--gpt2-prune 0.1]
    .venv/bin/python bench/circuits.py --peers --skip-zoo --gpt2-budget-s 0 [--quick]
        [--work DIR] [--eap-ig-source GIT]    # peers, then headlab's GPT-2-shape rows

1. Zoo models (those built, with a task here): per method (EAP and EAP-IG also without the QK
   fix, "linear", and EAP-IG on the input-embedding path) wall time, forward / backward passes
   (prompt-batch equivalents) and model calls, faithfulness of the stored circuit, curve area,
   edge and node AUC against the task's ground truth; plus one-edge-at-a-time ACDC against
   batched ACDC at the same tau (calls, same circuit?), and ACDC with EAP-IG-pruned candidates
   (edges attributed less than 0.1 tau removed untested) against full ACDC (same circuit?
   Jaccard of the kept edges).
2. A GPT-2-small-shaped random model (12 layers x 12 heads x d_model 768, MLPs; 32,491 edges):
   wall time of EAP and EAP-IG, with and without the QK fix, and of the QK fix's scoring step
   alone (with ``--qk-reference`` also the per-edge reference path it is tested equal to);
   ACDC (kl, ``--gpt2-tau``) testing every edge and with EAP-IG-pruned candidates
   (``--gpt2-prune``), each run to the end or to ``--gpt2-budget-s`` (0 = skip): wall time,
   forward-equivalents (wall / one plain forward), block compute, edges tested / untested /
   kept, agreement; and exact patching's cost estimate (it is not run there).
3. ``--peers`` (printed first, then 1 and 2 unless skipped): the same model and pairs in
   hannamw/EAP-IG and auto-circuit, each in its own venv under the work folder
   (``bench/peers/side_by_side.py``): wall times, headlab / peer ratios and rank correlations of
   the edge scores; ``--quick`` a small shape.
"""

from __future__ import annotations

import analysis  # noqa: F401  (first: it sets PyTorch's allocator up before torch loads)

# isort: split
import argparse
import contextlib
import os
import time
from pathlib import Path
from typing import Any

import torch

from analysis.circuits import qk_fix
from analysis.circuits.acdc import acdc, acdc_reference, candidates_from_attribution
from analysis.circuits.discover import DiscoverySettings, discover
from analysis.circuits.eap import dense_scores, eap_scores, linear_scores
from analysis.circuits.eap_ig import eap_ig_scores
from analysis.circuits.exact import exact_cost
from analysis.circuits.ground_truth import GroundTruthError, load_ground_truth
from analysis.circuits.qk_fix import apply_qk_fix
from analysis.circuits.qk_fix_reference import apply_qk_fix_reference
from analysis.circuits.task import build_task
from analysis.circuits.zoo_tasks import greater_than_pairs, induction_pairs
from analysis.prompt_batch import build_pair_batch, pair_batch_from_tokens
from analysis.zoo import is_built, zoo_folder
from analysis.zoo.checkpoint import load_zoo_bridge

# zoo model -> (pairs of the task its ground truth holds for, that task's name)
ZOO_TASKS = {
    "induction-2l": (induction_pairs, "induction-contrast"),
    "greater-than-3l": (greater_than_pairs, "greater-than"),
}
ACDC_PRUNE = 0.1  # ACDC with EAP-IG candidates: edges attributed < 0.1 tau go untested
METHODS = {
    "eap": DiscoverySettings(method="eap"),
    "eap linear": DiscoverySettings(method="eap", qk_fix=False),
    "eap-ig": DiscoverySettings(method="eap-ig", ig_steps=5),
    "eap-ig edges linear": DiscoverySettings(method="eap-ig", ig_steps=5, qk_fix=False),
    "eap-ig inputs": DiscoverySettings(method="eap-ig", ig_steps=5, ig_path="inputs"),
    "eap-ig inputs linear": DiscoverySettings(
        method="eap-ig", ig_steps=5, ig_path="inputs", qk_fix=False
    ),
    "exact": DiscoverySettings(method="exact"),
    "acdc": DiscoverySettings(method="acdc", metric="kl", tau=0.02),
}


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[c] + [_fmt(r.get(c, "")) for r in rows] for c in columns]
    widths = [max(len(x) for x in col) for col in cells]
    lines = ["  ".join(col[i].rjust(w) for col, w in zip(cells, widths, strict=True))
             for i in range(len(rows) + 1)]  # fmt: skip
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def zoo_rows(n_pairs: int) -> list[dict[str, Any]]:
    rows = []
    for name, (make_pairs, task) in ZOO_TASKS.items():
        if not is_built(name):
            print(f"(zoo:{name} is not built; skipped)")
            continue
        model = load_zoo_bridge(zoo_folder(name))
        model.enable_compatibility_mode()
        batch = build_pair_batch(model, make_pairs(n_pairs, seed=1))
        try:
            truth = load_ground_truth(None, f"zoo:{name}", task)
        except GroundTruthError as exc:
            print(f"(zoo:{name}: {exc}; no AUC)")
            truth = None
        for label, s in METHODS.items():
            d = discover(model, batch, s, truth=truth)
            roc = d.summary.get("roc", {})
            rows.append({
                "model": name, "method": label, "wall_s": d.summary["wall_s"],
                "fwd": d.summary["n_forward"], "bwd": d.summary["n_backward"],
                "calls": d.summary["n_calls"], "edges": d.summary["n_edges_in_circuit"],
                "faith": d.summary["faithfulness"], "area": d.summary["faithfulness_curve"]["area"],
                "edge_auc": roc.get("edge", {}).get("auc", ""),
                "node_auc": roc.get("node", {}).get("auc", ""),
            })  # fmt: skip
        rows += acdc_comparison(model, batch, name)
    return rows


def acdc_comparison(model: Any, batch: Any, name: str) -> list[dict[str, Any]]:
    task = build_task(model, batch, metric="kl")
    t0 = time.perf_counter()
    ref = acdc_reference(task, 0.02)
    t1 = time.perf_counter()
    fast = acdc(task, 0.02)
    t2 = time.perf_counter()
    same = bool(torch.equal(ref.kept, fast.kept))
    t3 = time.perf_counter()
    untested = candidates_from_attribution(task, eap_ig_scores(task, 5), 0.02, ACDC_PRUNE)
    pruned = acdc(task, 0.02, untested=untested)
    t4 = time.perf_counter()
    return [
        {"model": name, "method": "acdc 1-by-1", "wall_s": t1 - t0, "fwd": ref.n_forward,
         "calls": ref.n_calls, "edges": int(ref.kept.sum()), "same": ""},
        {"model": name, "method": "acdc batched", "wall_s": t2 - t1, "fwd": fast.n_forward,
         "calls": fast.n_calls, "edges": int(fast.kept.sum()), "same": same,
         "calls_ratio": ref.n_calls / max(fast.n_calls, 1)},
        {"model": name, "method": f"acdc pruned {ACDC_PRUNE}", "wall_s": t4 - t3,
         "calls": pruned.n_calls, "edges": int(pruned.kept.sum()),
         "tested": int(pruned.tested.sum()), "untested": int(untested.sum()),
         **_agreement(fast.kept, pruned.kept)},
    ]  # fmt: skip


class _Budget(Exception):
    pass


class _Clock:
    """Wall and CPU (process) time of a block; on a loaded machine the CPU time of a
    one-thread run is the steadier measure of its own work."""

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def row(self, label: str, plain: tuple[float, float], **extra: Any) -> dict[str, Any]:
        """A row with forward-equivalents against ``plain`` (wall, CPU s of a plain forward)."""
        return {"model": "gpt2-shaped", "method": label, "wall_s": self.wall,
                "fwd_eq": self.wall / plain[0], "cpu_s": self.cpu,
                "cpu_fwd_eq": self.cpu / plain[1], **extra}  # fmt: skip


def qk_fix_rows(
    model: Any, batch: Any, reference: bool, fwd: tuple[float, float]
) -> list[dict[str, Any]]:
    """Wall time of the scoring steps alone (no model pass) at the clean gradient run, and of
    one gradient run (a forward and a backward) at the clean run and at an EAP-IG edges step."""
    task = build_task(model, batch, with_gradients=True)
    run = task.clean_gradients
    assert run is not None
    diff = task.ablated - task.clean_outputs
    rows = []

    def timed(label: str, fn: Any) -> Any:
        with _Clock() as clock:
            result = fn()
        rows.append(clock.row(label, fwd))
        return result

    timed("gradient run, clean", lambda: task.gradient_run())
    timed("gradient run, edges step", lambda: task.gradient_run(fraction=0.5))
    dense = timed("linear scores only", lambda: dense_scores(task, run, diff, False))
    timed("linear scores, v/mlp/logits", lambda: linear_scores(task, run, diff, skip_qk=True))
    results = [timed("qk fix scores only", lambda: apply_qk_fix(dense, task.patcher, run, diff))]
    kernel = qk_fix.KERNEL
    try:
        qk_fix.KERNEL = "projection"
        label = "qk fix scores, projection kernel"
        results.append(timed(label, lambda: apply_qk_fix(dense, task.patcher, run, diff)))
    finally:
        qk_fix.KERNEL = kernel
    rows[-1]["max_diff"] = float((results[0] - results[1]).abs().max())
    if reference:
        label = "qk fix reference (per edge)"
        results.append(timed(label, lambda: apply_qk_fix_reference(dense, task.patcher, run, diff)))
        rows[-1]["max_diff"] = float((results[0] - results[2]).abs().max())
    return rows


def gpt2_model_and_batch(n_pairs: int = 8, n_pos: int = 16) -> tuple[Any, Any]:
    """The GPT-2-small-shaped random model (vocabulary 5000) and random clean/corrupted pairs."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=768, d_head=64, n_heads=12, n_layers=12, n_ctx=64, d_vocab=5000, d_mlp=3072,
        act_fn="gelu_new", normalization_type="LN", seed=0,
    )  # fmt: skip
    model = TransformerBridge.boot_native(cfg)
    model.enable_compatibility_mode()
    gen = torch.Generator().manual_seed(0)
    toks = torch.randint(0, 5000, (2, n_pairs, n_pos), generator=gen)
    answers = torch.randint(0, 5000, (2, n_pairs), generator=gen)
    batch = pair_batch_from_tokens(
        toks[0].tolist(), toks[1].tolist(), answers[0].tolist(), answers[1].tolist()
    )
    return model, batch


def plain_forward_s(model: Any, batch: Any, n: int = 5) -> tuple[float, float]:
    """Median wall and CPU time of a plain forward of the prompt batch (after a warm-up)."""
    walls, cpus = [], []
    with torch.no_grad():
        model(batch.clean)
        for _ in range(n):
            with _Clock() as clock:
                model(batch.clean)
            walls.append(clock.wall)
            cpus.append(clock.cpu)
    return sorted(walls)[n // 2], sorted(cpus)[n // 2]


GPT2_METHODS = {  # label -> (method, QK fix, EAP-IG path)
    "eap": ("eap", True, ""),
    "eap linear": ("eap", False, ""),
    "eap-ig (m=5, edges)": ("eap-ig", True, "edges"),
    "eap-ig (m=5, inputs)": ("eap-ig", True, "inputs"),
    "eap-ig edges linear": ("eap-ig", False, "edges"),
}


def gpt2_rows(model: Any, batch: Any, reference: bool) -> list[dict[str, Any]]:
    """EAP and EAP-IG end to end (building the task included) and their steps, in seconds and
    forward-equivalents: time / one plain forward of the same batch (the mean of the medians
    measured before and after), by wall time and by CPU time."""
    before = plain_forward_s(model, batch)
    timed = []
    for label, (method, fix, path) in GPT2_METHODS.items():
        with _Clock() as clock:
            task = build_task(model, batch, with_gradients=method == "eap")
            if method == "eap":
                eap_scores(task, fix)
            else:
                eap_ig_scores(task, 5, path=path, qk_fix=fix)
        c = task.counter
        timed.append((clock, label, {"fwd": c.n_forward, "bwd": c.n_backward, "calls": c.n_calls}))
    after = plain_forward_s(model, batch)
    fwd = ((before[0] + after[0]) / 2, (before[1] + after[1]) / 2)
    rows = [{"model": "gpt2-shaped", "method": "1 plain forward", "wall_s": fwd[0],
             "fwd_eq": 1.0, "cpu_s": fwd[1], "cpu_fwd_eq": 1.0}]  # fmt: skip
    rows += [clock.row(label, fwd, **extra) for clock, label, extra in timed]
    return rows + qk_fix_rows(model, batch, reference, fwd)


def acdc_gpt2_rows(
    model: Any, batch: Any, tau: float, prune: float, budget_s: float
) -> list[dict[str, Any]]:
    """ACDC (kl) at the GPT-2-small shape, testing every edge and with EAP-IG-pruned
    candidates, each to the end or to ``budget_s``; exact patching's cost estimate."""
    with torch.no_grad():
        walls = []
        for _ in range(3):
            t0 = time.perf_counter()
            model(batch.clean)
            walls.append(time.perf_counter() - t0)
    fwd_s = sorted(walls)[1]
    task = build_task(model, batch, metric="kl")
    cost = exact_cost(task)
    rows = [{"model": "gpt2-shaped", "method": "exact (estimate)", "fwd_eq": cost,
             "est_full_s": cost * fwd_s}]  # fmt: skip
    kept = {}
    for label, fraction in ((f"acdc tau {tau}", 0.0), (f"acdc tau {tau} pruned {prune}", prune)):
        row, result = _acdc_row(model, batch, tau, fraction, budget_s, fwd_s)
        row["method"] = label
        rows.append(row)
        if result is not None:
            kept[fraction] = result.kept
    if len(kept) == 2:
        rows[-1] |= _agreement(kept[0.0], kept[prune])
    return rows


def _acdc_row(
    model: Any, batch: Any, tau: float, prune: float, budget_s: float, fwd_s: float
) -> tuple[dict[str, Any], Any]:
    task = build_task(model, batch, metric="kl")
    start, untested = time.perf_counter(), None
    seen: dict[str, Any] = {}
    if prune > 0:
        attribution = eap_ig_scores(task, 5)
        untested = candidates_from_attribution(task, attribution, tau, prune)

    def stop(prog: Any, done: float) -> None:
        seen.update(done=done, tested=len(prog.scores))
        if time.perf_counter() - start > budget_s:
            raise _Budget

    result = None
    with contextlib.suppress(_Budget):
        result = acdc(task, tau, on_round=stop, untested=untested)
    wall = time.perf_counter() - start
    row = {"model": "gpt2-shaped", "wall_s": wall, "fwd_eq": wall / fwd_s,
           "compute": task.counter.compute, "calls": task.counter.n_calls,
           "tested": seen.get("tested", 0),
           "untested": int(untested.sum()) if untested is not None else 0,
           "finished": result is not None}  # fmt: skip
    if result is not None:
        row["edges"] = int(result.kept.sum())
    else:
        row["est_full_s"] = f">{wall:.0f} ({seen.get('done', 0.0):.1%} of the edge order)"
    return row, result


def _agreement(full: torch.Tensor, pruned: torch.Tensor) -> dict[str, Any]:
    both = int((full & pruned).sum())
    union = int((full | pruned).sum())
    return {"same": bool(torch.equal(full, pruned)), "jaccard": both / union if union else 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument(
        "--gpt2-budget-s",
        type=float,
        default=1200.0,
        help="ACDC at the GPT-2 shape: time budget per run (0 = skip ACDC)",
    )
    parser.add_argument("--gpt2-tau", type=float, default=0.001, help="ACDC tau (kl) there")
    parser.add_argument(
        "--gpt2-prune",
        type=float,
        default=0.1,
        help="ACDC there with EAP-IG candidates: untested below this x tau",
    )
    parser.add_argument("--skip-gpt2", action="store_true")
    parser.add_argument("--skip-zoo", action="store_true")
    parser.add_argument("--qk-reference", action="store_true", help="also time the per-edge path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peers", action="store_true", help="side by side with peer libraries")
    parser.add_argument("--quick", action="store_true", help="--peers on a small model shape")
    parser.add_argument("--work", type=Path, default=None, help="--peers venvs and files")
    parser.add_argument("--eap-ig-source", default=None, help="git URL or dir of hannamw/EAP-IG")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.peers:  # first, so that a failed peer set-up stops the run before the long parts
        print(_table(_peer_rows(args), PEER_COLUMNS))
        print()
    rows = [] if args.skip_zoo else zoo_rows(args.pairs)
    if not args.skip_gpt2:
        model, batch = gpt2_model_and_batch()
        rows += gpt2_rows(model, batch, args.qk_reference)
        if args.gpt2_budget_s > 0:
            rows += acdc_gpt2_rows(model, batch, args.gpt2_tau, args.gpt2_prune, args.gpt2_budget_s)
    columns = ["model", "method", "wall_s", "fwd", "fwd_eq", "cpu_s", "cpu_fwd_eq", "compute",
               "bwd", "calls", "edges",
               "tested", "untested", "finished", "faith", "area", "edge_auc", "node_auc", "same",
               "jaccard", "calls_ratio", "est_full_s", "max_diff"]  # fmt: skip
    print(_table(rows, columns))


PEER_COLUMNS = ["model", "headlab", "peer", "headlab_s", "peer_s", "ratio", "spearman",
                "pearson", "max_abs_diff", "max_abs", "edges_both", "only_headlab", "only_peer",
                "kept_headlab", "kept_peer", "kept_same"]  # fmt: skip


def _peer_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    from peers.side_by_side import EAP_IG_REPO, PeerError, peer_rows

    home = os.environ.get("HEADLAB_HOME")
    default = Path(home) / "bench-peers" if home else Path(__file__).parent / "work/peers"
    work = args.work or default
    shape = "quick" if args.quick else "gpt2-small"
    try:
        return peer_rows(work.resolve(), shape, 8, 16, 5, args.threads,
                         args.eap_ig_source or EAP_IG_REPO, acdc_tau=0.02)  # fmt: skip
    except PeerError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
