"""The circuit graph: node/channel/edge enumeration, names, GQA channels."""

from __future__ import annotations

import pytest

from analysis.circuits.graph import CircuitGraph, CircuitGraphError, node_layer_head


def test_attention_only_graph_counts_and_order() -> None:
    g = CircuitGraph(n_layers=2, n_heads=4, n_kv_heads=4, has_mlp=False)
    assert g.nodes[:2] == ("input", "a0.h0") and g.nodes[-1] == "a1.h3"
    # layer 0: 12 channels x 1 source; layer 1: 12 x 5; logits: 9
    assert g.n_edges == 12 + 60 + 9
    assert g.edges[0] == ("input", "a0.h0<q>")
    assert g.edges[-1] == ("a1.h3", "logits")
    assert ("a0.h1", "a1.h2<k>") in g.edges
    assert ("a1.h0", "a1.h2<k>") not in g.edges  # same layer: no edge


def test_mlp_reads_its_own_layers_heads() -> None:
    g = CircuitGraph(n_layers=2, n_heads=2, n_kv_heads=2, has_mlp=True)
    assert ("a0.h1", "m0") in g.edges and ("m0", "a1.h0<v>") in g.edges
    assert ("m1", "logits") in g.edges and ("m0", "m0") not in g.edges
    assert g.edge_index("m0", "m1") == g.edges.index(("m0", "m1"))
    gpt2 = CircuitGraph(n_layers=12, n_heads=12, n_kv_heads=12, has_mlp=True)
    assert len(gpt2.nodes) == 157 and len(gpt2.channels) == 445 and gpt2.n_edges == 32491


def test_gqa_channels_are_per_kv_head() -> None:
    g = CircuitGraph(n_layers=1, n_heads=4, n_kv_heads=2, has_mlp=False)
    names = [c.name for c in g.channels]
    assert names == [
        "a0.h0<q>", "a0.h1<q>", "a0.h2<q>", "a0.h3<q>",
        "a0.kv0<k>", "a0.kv1<k>", "a0.kv0<v>", "a0.kv1<v>", "logits",
    ]  # fmt: skip
    assert g.channel_owners(g.channels[5]) == ["a0.h2", "a0.h3"]
    with pytest.raises(CircuitGraphError, match="multiple"):
        CircuitGraph(n_layers=1, n_heads=4, n_kv_heads=3, has_mlp=False)


def test_bad_names_are_reported() -> None:
    g = CircuitGraph(n_layers=1, n_heads=2, n_kv_heads=2, has_mlp=False)
    with pytest.raises(CircuitGraphError, match="no edge a0.h0 -> a0.h1<q>"):
        g.edge_index("a0.h0", "a0.h1<q>")
    assert node_layer_head("a3.h7") == (3, 7) and node_layer_head("m2") == (2, None)
    assert node_layer_head("logits") == (None, None)
    with pytest.raises(CircuitGraphError):
        node_layer_head("head7")
