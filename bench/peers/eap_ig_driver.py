"""Runs hannamw/EAP-IG's ``attribute`` (EAP and EAP-IG-inputs) inside its own venv.

    python eap_ig_driver.py MODEL_FOLDER PAIRS_JSON OUT_JSON IG_STEPS

Writes {"wall_s": {method: s}, "scores": {method: {"src->dst": score}}}. Two adapters, no change
to the peer's code: the pairs arrive as token ids (``tokenize_plus`` is replaced by one that
passes them through with a full attention mask; the random model has no tokenizer) and its
score buffers are allocated on the CPU (the reference hard-codes ``device="cuda"``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tl_model import load_hooked, load_pairs, logit_diff_sum


class _TorchOnCpu:
    """``torch`` as eap.attribute sees it, with ``zeros(..., device="cuda")`` on the CPU."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def zeros(*args: Any, **kwargs: Any) -> torch.Tensor:
        kwargs["device"] = "cpu"
        return torch.zeros(*args, **kwargs)


def _tokens_as_given(model: Any, tokens: torch.Tensor, max_length: Any = None) -> tuple:
    n_pos = tokens.shape[1]
    mask = torch.ones_like(tokens)
    return tokens, mask, torch.full((tokens.shape[0],), n_pos), n_pos


def main() -> None:
    folder, pairs_path, out_path, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    import eap.attribute as attribute_module
    from eap.attribute import attribute
    from eap.graph import Graph

    attribute_module.torch = _TorchOnCpu()  # type: ignore[assignment]
    attribute_module.tokenize_plus = _tokens_as_given  # type: ignore[assignment]
    torch.set_num_threads(int(sys.argv[5]) if len(sys.argv) > 5 else 2)
    model = load_hooked(folder)
    model.set_use_attn_result(True)
    model.set_use_split_qkv_input(True)
    model.set_use_hook_mlp_in(True)
    pairs = load_pairs(pairs_path)
    label = torch.stack([pairs["answer"], pairs["wrong"]], dim=1)
    loader = [(pairs["clean"], pairs["corrupted"], label)]

    def metric(logits: Any, clean_logits: Any, input_lengths: Any, lab: Any) -> Any:
        # a sum over the pairs: attribute() divides by the number of pairs (a mean)
        return logit_diff_sum(logits, {"answer": lab[:, 0], "wrong": lab[:, 1]})

    out: dict[str, Any] = {"wall_s": {}, "scores": {}}
    for label_, method, ig in (("eap", "EAP", None), ("eap-ig", "EAP-IG-inputs", steps)):
        graph = Graph.from_model(model)
        t0 = time.perf_counter()
        attribute(model, graph, loader, metric, method, ig_steps=ig, quiet=True)
        out["wall_s"][label_] = time.perf_counter() - t0
        out["scores"][label_] = {name: float(e.score) for name, e in graph.edges.items()}
    Path(out_path).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
