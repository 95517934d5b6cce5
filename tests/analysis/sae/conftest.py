"""Fixtures for the SAE tests: a tiny random attention-only bridge with a char tokenizer and a
small SAE trained on it once per session (shared read-only by the tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.analysis.heads_fixtures import native_attn_only


@pytest.fixture(scope="session")
def model():
    torch.set_num_threads(2)
    return native_attn_only(seed=0, n_ctx=64)


@pytest.fixture(scope="session")
def trained(model, tmp_path_factory):
    from analysis.sae.activations import RepeatedTokens
    from analysis.sae.train import TrainSettings, train_attention_saes

    source = RepeatedTokens.for_model(model, 32)
    settings = TrainSettings(
        d_sae=48, k=4, training_tokens=24_576, batch_tokens=512, context_size=32, log_every=5
    )
    out: Path = tmp_path_factory.mktemp("sae")
    return train_attention_saes(model, source, [0, 1], settings, out, model_spec="test:random")


@pytest.fixture(scope="session")
def eval_tokens(model):
    from analysis.sae.activations import RepeatedTokens, collect_tokens

    return collect_tokens(RepeatedTokens.for_model(model, 32), 1024, seed=123)
