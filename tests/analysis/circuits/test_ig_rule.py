"""EAP-IG's step rule: midpoints (k + 1/2)/m (default) or hannamw/EAP-IG's left points k/m.

Known answer: on the ``edges`` path with linear scores EAP-IG is complete (the edge scores sum to
m_ablated - m_clean in the limit), so each rule's completeness error measures its quadrature
error: both vanish as m grows, the midpoint's faster (O(1/m^2) against O(1/m))."""

from __future__ import annotations

import pytest
import torch

from analysis.circuits.discover import DiscoverySettings, discover
from analysis.circuits.eap_ig import eap_ig_scores, step_points
from analysis.circuits.task import build_task
from analysis.configs.circuits import CircuitConfig


def test_step_points() -> None:
    assert step_points(4) == [0.125, 0.375, 0.625, 0.875]
    assert step_points(4, "left") == [0.0, 0.25, 0.5, 0.75]
    with pytest.raises(ValueError, match="unknown ig_rule 'right'; choose one of midpoint, left"):
        step_points(4, "right")


def test_both_rules_agree_at_m40_and_the_midpoint_is_closer_at_m5(attn_model, batch):
    task = build_task(attn_model, batch)
    gap = task.metric_corrupt - task.metric_clean

    def scores(m: int, rule: str) -> torch.Tensor:
        return eap_ig_scores(task, m, qk_fix=False, rule=rule)

    mid40, left40 = scores(40, "midpoint"), scores(40, "left")
    assert float((mid40 - left40).norm() / mid40.norm()) < 0.05
    assert float(mid40.sum()) == pytest.approx(gap, rel=1e-3)
    assert float(left40.sum()) == pytest.approx(gap, rel=5e-2)
    mid, left = scores(5, "midpoint"), scores(5, "left")
    assert 2 * (mid - mid40).norm() < (left - mid40).norm()


def test_the_rule_is_a_config_field_carried_to_the_summary(attn_model, batch):
    assert CircuitConfig(model="zoo:induction-2l", prompt_set="p").ig_rule == "midpoint"
    with pytest.raises(ValueError, match="ig_rule"):
        CircuitConfig(model="zoo:induction-2l", prompt_set="p", ig_rule="right")
    d = discover(attn_model, batch, DiscoverySettings(method="eap-ig", ig_steps=2, ig_rule="left"))
    assert d.summary["ig_rule"] == "left"
    task = build_task(attn_model, batch)
    assert torch.equal(d.scores, eap_ig_scores(task, 2, rule="left"))
