"""headlab's EAP / EAP-IG / ACDC next to the peer libraries on the same model and pairs.

Called by ``bench/circuits.py --peers``. Each peer lives in its own venv under the work folder
(never a headlab dependency): hannamw/EAP-IG from its repository at ``EAP_IG_COMMIT``,
auto-circuit from the package index at ``AUTO_CIRCUIT_VERSION``; torch is pinned to the same CPU
wheel as headlab (``constraints.txt``). The model is a random GPT-2-shaped HF folder that both
TransformerLens' HookedTransformer (peers) and headlab's TransformerBridge load; pairs go in as a
JSON file of token ids, edge scores come back as JSON keyed ``"src->dst"`` (headlab's names).
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from analysis.circuits.acdc import acdc
from analysis.circuits.eap import eap_scores
from analysis.circuits.eap_ig import eap_ig_scores
from analysis.circuits.task import build_task
from analysis.prompt_batch import PairBatch, pair_batch_from_tokens

HERE = Path(__file__).resolve().parent
EAP_IG_REPO = "https://github.com/hannamw/EAP-IG"
EAP_IG_COMMIT = "795f5607b25638935aec89aee3c1cb4bd9ed72f1"
AUTO_CIRCUIT_VERSION = "1.0.1"
# the peers' HookedTransformer: TransformerLens 2 (the peers predate TransformerBridge)
PEER_BASE = ["torch==2.13.0+cpu", "transformer-lens==2.16.1"]
PEERS = {
    "eap-ig": {"deps": ["matplotlib"], "driver": "eap_ig_driver.py"},
    # auto-circuit's own imports; its other requirements (tracr, kaleido 0.2.1, word2word, a
    # tqdm fork) serve tasks and figures the bench does not use, so it is installed --no-deps
    "auto-circuit": {
        "deps": ["plotly", "ordered-set", "einops", "attrs", "blobfile"],
        "driver": "auto_circuit_driver.py",
    },
}
SHAPES = {
    "gpt2-small": {"n_layer": 12, "n_head": 12, "n_embd": 768, "vocab_size": 5000},
    "quick": {"n_layer": 2, "n_head": 4, "n_embd": 64, "vocab_size": 100, "initializer_range": 0.1},
}


class PeerError(RuntimeError):
    """A peer could not be installed or run; the message says which command failed."""


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise PeerError(f"{what} failed ({' '.join(cmd[:4])} ...): {' | '.join(tail)}")


def ensure_venv(work: Path, peer: str, eap_ig_source: str) -> Path:
    """The peer's venv python (built once; a ``.ready`` stamp marks a finished install)."""
    venv = work / f"{peer}-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".ready"
    if stamp.exists():
        return python
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], f"{peer}: venv")
    pip = [str(python), "-m", "pip", "install", "-q", "-c", str(HERE / "constraints.txt")]
    _run(pip + PEER_BASE + PEERS[peer]["deps"], f"{peer}: pip install")
    if peer == "eap-ig":
        src = work / "eap-ig-src"
        if not (src / ".git").exists():
            _run(["git", "clone", "-q", "--no-checkout", eap_ig_source, str(src)], "git clone")
        _run(["git", "-C", str(src), "checkout", "-q", EAP_IG_COMMIT], "git checkout")
        _run(pip + ["--no-deps", str(src)], "eap-ig: pip install")
    else:
        _run(pip + ["--no-deps", f"auto-circuit=={AUTO_CIRCUIT_VERSION}"], "auto-circuit: pip")
    stamp.write_text(
        json.dumps({"eap_ig_commit": EAP_IG_COMMIT, "auto_circuit": AUTO_CIRCUIT_VERSION})
    )
    return python


def build_model_folder(work: Path, shape_name: str) -> Path:
    """A random GPT-2 model saved as an HF folder (weights std 0.02 as HF initialises them)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from analysis.zoo.tokenizer import build_char_tokenizer

    folder = work / f"model-{shape_name}"
    if (folder / "config.json").exists():
        return folder
    shape = SHAPES[shape_name]
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_positions=64, bos_token_id=0, eos_token_id=0, **shape))
    hf.save_pretrained(folder)
    build_char_tokenizer("abcdefghijklmnopqrstuvwxyz", folder / "tokenizer")
    return folder


def make_pairs(vocab: int, n_pairs: int, n_pos: int) -> tuple[PairBatch, dict[str, Any]]:
    gen = torch.Generator().manual_seed(0)
    toks = torch.randint(0, vocab, (2, n_pairs, n_pos), generator=gen)
    answers = torch.randint(0, vocab, (2, n_pairs), generator=gen)
    raw = {"clean": toks[0].tolist(), "corrupted": toks[1].tolist(),
           "answer": answers[0].tolist(), "wrong": answers[1].tolist()}  # fmt: skip
    batch = pair_batch_from_tokens(raw["clean"], raw["corrupted"], raw["answer"], raw["wrong"])
    return batch, raw


def load_bridge(folder: Path) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    from analysis.zoo.tokenizer import load_char_tokenizer

    model = TransformerBridge.boot_transformers(
        str(folder), device="cpu", tokenizer=load_char_tokenizer(folder / "tokenizer")
    )
    model.enable_compatibility_mode()
    return model


def headlab_scores(model: Any, batch: PairBatch, ig_steps: int) -> dict[str, Any]:
    """Wall time and named edge scores of headlab's methods (task build included)."""
    runs = {
        "eap (qk fix)": lambda t: eap_scores(t, True),
        "eap linear": lambda t: eap_scores(t, False),
        "eap-ig inputs linear": lambda t: eap_ig_scores(t, ig_steps, "inputs", False),
        "eap-ig edges linear": lambda t: eap_ig_scores(t, ig_steps, "edges", qk_fix=False),
        "eap-ig edges (qk fix)": lambda t: eap_ig_scores(t, ig_steps, "edges"),
    }
    if "rule" in inspect.signature(eap_ig_scores).parameters:  # hannamw's points k/m
        runs["eap-ig inputs linear left"] = lambda t: eap_ig_scores(
            t, ig_steps, "inputs", False, rule="left"
        )
    out: dict[str, Any] = {"wall_s": {}, "scores": {}}
    for label, fn in runs.items():
        t0 = time.perf_counter()
        task = build_task(model, batch, with_gradients=not label.startswith("eap-ig"))
        scores = fn(task)
        out["wall_s"][label] = time.perf_counter() - t0
        names = [f"{u}->{v}" for u, v in task.graph.edges]
        out["scores"][label] = dict(zip(names, scores.tolist(), strict=True))
    return out


def run_peer(python: Path, peer: str, folder: Path, pairs: Path, args: list[Any]) -> dict:
    return _driver(python, peer, folder, pairs, pairs.with_name(f"{peer}-scores.json"), args)


def _driver(python: Path, peer: str, folder: Path, pairs: Path, out: Path, args: list[Any]) -> dict:
    cmd = [str(python), str(HERE / PEERS[peer]["driver"]), str(folder), str(pairs), str(out)]
    _run(cmd + [str(a) for a in args], f"{peer}: driver")
    return json.loads(out.read_text())


def compare(ours: dict[str, float], theirs: dict[str, float]) -> dict[str, Any]:
    """Spearman / Pearson over the edges both have; the scale factor theirs -> ours."""
    common = sorted(set(ours) & set(theirs))
    a = pd.Series([ours[n] for n in common])
    b = pd.Series([theirs[n] for n in common])
    return {
        "edges_both": len(common), "only_headlab": len(set(ours) - set(theirs)),
        "only_peer": len(set(theirs) - set(ours)),
        "spearman": float(a.corr(b, method="spearman")), "pearson": float(a.corr(b)),
        "max_abs_diff": float((a - b).abs().max()), "max_abs": float(a.abs().max()),
    }  # fmt: skip


def headlab_acdc(model: Any, batch: PairBatch, tau: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    task = build_task(model, batch, metric="kl")
    kept = acdc(task, tau).kept
    wall = time.perf_counter() - t0
    names = [f"{u}->{v}" for u, v in task.graph.edges]
    return {"wall_s": wall, "kept": dict(zip(names, kept.flatten().float().tolist(), strict=True))}


# (headlab method, peer, peer method, factor mapping the peer's score onto headlab's convention)
COMPARISONS = [
    ("eap linear", "eap-ig", "eap", 1.0),
    ("eap (qk fix)", "eap-ig", "eap", 1.0),
    ("eap-ig inputs linear", "eap-ig", "eap-ig", 1.0),
    ("eap-ig inputs linear left", "eap-ig", "eap-ig", 1.0),
    ("eap linear", "auto-circuit", "eap", -1.0),
    ("eap (qk fix)", "auto-circuit", "eap", -1.0),
    ("eap-ig edges linear", "auto-circuit", "eap-ig", None),  # -1/(m+1): m+1 summed samples
    ("eap-ig edges (qk fix)", "auto-circuit", "eap-ig", None),
]


def peer_rows(
    work: Path, shape: str, n_pairs: int, n_pos: int, ig_steps: int, threads: int,
    eap_ig_source: str, acdc_tau: float,
) -> list[dict[str, Any]]:  # fmt: skip
    """One row per (headlab method, peer method): wall times, ratio, rank correlations."""
    work.mkdir(parents=True, exist_ok=True)
    pythons = {peer: ensure_venv(work, peer, eap_ig_source) for peer in PEERS}
    rows = _score_rows(work, shape, n_pairs, n_pos, ig_steps, threads, pythons)
    if acdc_tau > 0:
        rows.append(_acdc_row(work, n_pairs, n_pos, threads, pythons["auto-circuit"], acdc_tau))
    return rows


def _score_rows(
    work: Path, shape: str, n_pairs: int, n_pos: int, ig_steps: int, threads: int,
    pythons: dict[str, Path],
) -> list[dict[str, Any]]:  # fmt: skip
    folder = build_model_folder(work, shape)
    batch, raw = make_pairs(SHAPES[shape]["vocab_size"], n_pairs, n_pos)
    pairs = work / f"pairs-{shape}.json"
    pairs.write_text(json.dumps(raw))
    ours = headlab_scores(load_bridge(folder), batch, ig_steps)
    theirs = {
        "eap-ig": run_peer(pythons["eap-ig"], "eap-ig", folder, pairs, [ig_steps, threads]),
        "auto-circuit": run_peer(
            pythons["auto-circuit"], "auto-circuit", folder, pairs, [ig_steps, threads, 0]
        ),
    }
    rows = []
    for ours_m, peer, peer_m, factor in COMPARISONS:
        if ours_m not in ours["wall_s"]:
            continue
        f = -1.0 / (ig_steps + 1) if factor is None else factor
        mapped = {k: f * v for k, v in theirs[peer]["scores"][peer_m].items()}
        ours_s, peer_s = ours["wall_s"][ours_m], theirs[peer]["wall_s"][peer_m]
        rows.append({"model": shape, "headlab": ours_m, "peer": f"{peer} {peer_m}",
                     "headlab_s": ours_s, "peer_s": peer_s, "ratio": ours_s / peer_s,
                     **compare(ours["scores"][ours_m], mapped)})  # fmt: skip
    return rows


def _acdc_row(
    work: Path, n_pairs: int, n_pos: int, threads: int, python: Path, tau: float
) -> dict[str, Any]:
    """ACDC at tau on the quick shape (one forward per edge: the GPT-2 shape takes hours)."""
    folder = build_model_folder(work, "quick")
    batch, raw = make_pairs(SHAPES["quick"]["vocab_size"], n_pairs, n_pos)
    pairs = work / "pairs-quick-acdc.json"
    pairs.write_text(json.dumps(raw))
    ours = headlab_acdc(load_bridge(folder), batch, tau)
    out = pairs.with_name("auto-circuit-acdc.json")
    theirs = _driver(python, "auto-circuit", folder, pairs, out, [0, threads, tau])
    kept_a = {k for k, v in ours["kept"].items() if v}
    kept_b = {k for k, v in theirs["scores"]["acdc"].items() if v}
    return {"model": "quick", "headlab": f"acdc tau {tau}", "peer": "auto-circuit acdc",
            "headlab_s": ours["wall_s"], "peer_s": theirs["wall_s"]["acdc"],
            "ratio": ours["wall_s"] / theirs["wall_s"]["acdc"],
            "edges_both": len(set(ours["kept"]) & set(theirs["scores"]["acdc"])),
            "kept_headlab": len(kept_a), "kept_peer": len(kept_b),
            "kept_same": kept_a == kept_b}  # fmt: skip
