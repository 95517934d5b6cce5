import pytest

from analysis import hooks
from analysis.hooks import HookSite, MissingHook
from tests.analysis.heads_fixtures import native_attn_only


def test_names():
    assert HookSite("z", 3).name == "blocks.3.attn.hook_z"
    assert HookSite("pattern", 0).name == "blocks.0.attn.hook_pattern"
    assert HookSite("resid_pre", 2).name == "blocks.2.hook_resid_pre"
    assert HookSite("mlp_out", 1).name == "blocks.1.hook_mlp_out"
    assert HookSite("embed").name == "hook_embed"
    assert HookSite("k", 1).is_kv and HookSite("pattern", 1).is_pattern


def test_bad_sites_rejected():
    with pytest.raises(ValueError, match="needs a layer"):
        HookSite("z")
    with pytest.raises(ValueError, match="unknown hook site"):
        HookSite("nope")  # type: ignore[arg-type]


def test_require_hooks_names_missing():
    model = native_attn_only()
    hooks.require_hooks(model, [HookSite("z", 1), HookSite("resid_pre", 0)])
    with pytest.raises(MissingHook, match="blocks.0.hook_mlp_out, blocks.9.attn.hook_z"):
        hooks.require_hooks(model, [HookSite("mlp_out", 0), HookSite("z", 9)])
    assert hooks.n_heads_at(model, "k") == 4
