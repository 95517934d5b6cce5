"""Circuit runs with known node and edge sets, stored through the real store as a worker
stores them (enqueue, claim, ``finish_run`` with a ``RunOutput``), for the overlap tests.

Three circuits on ``zoo:induction-2l`` (2 layers × 4 heads), in-circuit nodes:

- A (prompt set ``ic-a``, task induction-contrast): a0.h1, a1.h2, a1.h3, m0
- B (prompt set ``ic-b``, task induction-contrast): a0.h0, a0.h1, a1.h2
- C (prompt set ``ind-c``, task induction, which has no ground truth): a1.h0, a1.h2, m0, m1

Every other head and MLP is stored as a node outside the circuit. In-circuit edges: A has
a0.h1→a1.h2<k> (3.0), a1.h2→logits (2.5), input→a0.h1<q> (1.0); B has a0.h1→a1.h2<k> (1.5),
a1.h2→logits (−0.5), a0.h0→a1.h2<v> (0.7); C has a1.h2→logits (4.0) and stores
a0.h1→a1.h2<k> outside its circuit. So only a1.h2→logits is in every circuit.
"""

from __future__ import annotations

from storage.errors import NotFound
from storage.records import EdgeIn, NodeIn, PairIn, RunOutput, RunStatus
from storage.store import ResultStore

MODEL = "zoo:induction-2l"
HEADS = [f"a{la}.h{h}" for la in range(2) for h in range(4)]
MLPS = ["m0", "m1"]
CIRCUITS = {
    "A": ({"a0.h1", "a1.h2", "a1.h3", "m0"}, "ic-a", "induction-contrast"),
    "B": ({"a0.h0", "a0.h1", "a1.h2"}, "ic-b", "induction-contrast"),
    "C": ({"a1.h0", "a1.h2", "m0", "m1"}, "ind-c", "induction"),
}
EDGES = {
    "A": [("a0.h1", "a1.h2<k>", 3.0, True), ("a1.h2", "logits", 2.5, True),
          ("input", "a0.h1<q>", 1.0, True), ("a0.h0", "a1.h2<v>", 0.1, False)],
    "B": [("a0.h1", "a1.h2<k>", 1.5, True), ("a1.h2", "logits", -0.5, True),
          ("a0.h0", "a1.h2<v>", 0.7, True), ("input", "a0.h1<q>", 0.05, False)],
    "C": [("a1.h2", "logits", 4.0, True), ("a0.h1", "a1.h2<k>", 0.2, False)],
}  # fmt: skip


def node(name: str, used: bool) -> NodeIn:
    layer = int(name[1:].split(".")[0])
    head = int(name.split(".h")[1]) if ".h" in name else None
    return NodeIn(name=name, layer=layer, head=head, score=1.0 if used else 0.0, in_circuit=used)


def grid_nodes(n_layers: int, n_heads: int) -> list[str]:
    """Every head and MLP name of an ``n_layers × n_heads`` model."""
    heads = [f"a{la}.h{h}" for la in range(n_layers) for h in range(n_heads)]
    return heads + [f"m{la}" for la in range(n_layers)]


def finished_circuit(
    store: ResultStore,
    prompt_set: str,
    task: str,
    members: set[str],
    edges: list,
    model: str = MODEL,
    method: str = "eap",
    nodes: list[str] | None = None,
) -> int:
    """A finished ``circuit`` run whose in-circuit nodes are ``members`` (of ``nodes``, by
    default every node of induction-2l)."""
    try:
        ps = store.get_prompt_set(prompt_set).id
    except NotFound:
        pairs = [PairIn("abcab", "abcxy", "c", "z")]
        ps = store.add_prompt_set(prompt_set, pairs, "test", model, {"task": task}).id
    config = {"kind": "circuit", "model": model, "prompt_set": prompt_set, "method": method}
    run = store.enqueue_run("circuit", config, model, ps, {"headlab": "test"}, "test")
    store.claim_run(run.id, "test-worker")
    output = RunOutput(
        edges=[EdgeIn(s, t, v, k) for s, t, v, k in edges],
        nodes=[node(n, n in members) for n in nodes or HEADS + MLPS],
        summary={"method": method},
    )
    record = store.finish_run(run.id, output)
    assert record.status == RunStatus.FINISHED
    return record.id


def store_circuits(store: ResultStore) -> dict[str, int]:
    """Runs A, B and C; returns their ids by letter."""
    return {
        key: finished_circuit(store, ps, task, members, EDGES[key])
        for key, (members, ps, task) in CIRCUITS.items()
    }
