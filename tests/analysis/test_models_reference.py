"""Published reference circuits load and are well formed."""

import re

import pytest

from analysis.reference import load_reference, reference_names

NODE = re.compile(r"^(input|logits|m\d+|a\d+\.h\d+)$")
TARGET = re.compile(r"^(logits|m\d+|a\d+\.h\d+<[qkv]>)$")


@pytest.mark.parametrize("name", ["gpt2-small-ioi", "gpt2-small-greater-than"])
def test_reference_is_well_formed(name):
    ref = load_reference(name)
    assert ref["model"] == "hf:gpt2" and ref["source"] and ref["evidence"]
    assert all(NODE.match(n) for n in ref["nodes"])
    for source, target in ref["edges"]:
        assert NODE.match(source) and TARGET.match(target)
        assert source == "input" or source in ref["nodes"]
        assert target == "logits" or target.split("<")[0] in ref["nodes"]
    for node in ref["nodes"]:
        layer, _, head = node[1:].partition(".h")
        assert 0 <= int(layer) < 12 and (not head or 0 <= int(head) < 12)


def test_ioi_classes_match_the_paper():
    classes = load_reference("gpt2-small-ioi")["classes"]
    assert classes["name movers"] == ["a9.h6", "a9.h9", "a10.h0"]
    assert classes["negative name movers"] == ["a10.h7", "a11.h10"]
    assert len(load_reference("gpt2-small-ioi")["nodes"]) == 26


def test_greater_than_has_mlps_8_to_11():
    ref = load_reference("gpt2-small-greater-than")
    assert {"m8", "m9", "m10", "m11"} <= set(ref["nodes"]) and "a9.h1" in ref["nodes"]


def test_unknown_reference_lists_known():
    with pytest.raises(ValueError, match="gpt2-small-ioi"):
        load_reference("nope")
    assert "gpt2-small-greater-than" in reference_names()
