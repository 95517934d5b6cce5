"""``headlab models`` and ``headlab prompts`` end to end: real CLI subprocesses, real SQLite."""

from __future__ import annotations

import json

import pytest

from analysis.zoo import zoo_names
from tests.analysis.test_models import make_hf_folder
from tests.integration.cli import headlab, headlab_json

# real CLI subprocesses: each one imports torch and TransformerLens
pytestmark = pytest.mark.slow


def test_models_build_demo_list_show(store, headlab_env):
    built = headlab_json("models", "build-demo", env=headlab_env)
    assert built["trained"] == []  # shipped weights are reused
    listed = headlab_json("models", "list", env=headlab_env)
    assert {m["name"] for m in listed["models"]} == set(zoo_names())
    shown = headlab_json("models", "show", "induction-2l", env=headlab_env)["model"]
    assert shown["spec"] == "zoo:induction-2l" and shown["facts"]["n_layers"] == 2


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_models_add_local_hf_folder(store, headlab_env, tmp_path, arch):
    folder = make_hf_folder(tmp_path / arch, arch)
    env = {**headlab_env, "HF_HUB_OFFLINE": "1"}
    added = headlab_json("models", "add", f"hf:{folder}", "--name", arch, env=env)["model"]
    assert added["name"] == arch and added["spec"] == f"hf:{folder}"
    assert added["facts"]["n_kv_heads"] == (2 if arch == "llama" else 4)
    again = headlab("models", "add", f"hf:{folder}", "--name", arch, env=env, check=False)
    assert again.returncode == 3 and "already exists" in again.stderr


def test_models_bad_specs(store, headlab_env):
    for spec, message in [
        ("gpt2", "malformed"),
        ("zoo:nope", "the zoo has"),
        ("hf:/no/such/folder", "no such folder"),
    ]:
        result = headlab("models", "add", spec, env=headlab_env, check=False)
        assert result.returncode != 0 and message in result.stderr, result.stderr
    result = headlab(
        "models", "add", "hf:owner/model", env={**headlab_env, "HF_HUB_OFFLINE": "1"}, check=False
    )
    assert result.returncode != 0 and "hf:/path/to/folder" in result.stderr


def test_prompts_generate_export_import_round_trip(store, headlab_env, tmp_path):
    env = headlab_env
    made = headlab_json(
        "prompts",
        "generate",
        "induction",
        "--n",
        "6",
        "--model",
        "zoo:induction-2l",
        "--name",
        "ind",
        "--seed",
        "1",
        env=env,
    )
    assert made["prompt_set"]["n_pairs"] == 6
    out = tmp_path / "ind.csv"
    headlab("prompts", "export", "ind", "--format", "csv", "--out", str(out), env=env)
    headlab_json(
        "prompts", "import", str(out), "--name", "ind2", "--model", "zoo:induction-2l", env=env
    )
    first = headlab_json("prompts", "show", "ind", "--limit", "100", env=env)
    second = headlab_json("prompts", "show", "ind2", "--limit", "100", env=env)
    assert first["pairs"] == second["pairs"]
    assert first["prompt_set"]["content_hash"] == second["prompt_set"]["content_hash"]

    # a duplicate name and a bad file are refused; what is stored stays as it was
    dup = headlab(
        "prompts",
        "import",
        str(out),
        "--name",
        "ind",
        "--model",
        "zoo:induction-2l",
        env=env,
        check=False,
    )
    assert dup.returncode == 3 and "already exists" in dup.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"clean": "abcab", "corrupted": "abcabc", "correct": "c", "incorrect": "d"})
        + "\n"
    )
    result = headlab(
        "prompts",
        "import",
        str(bad),
        "--name",
        "bad",
        "--model",
        "zoo:induction-2l",
        env=env,
        check=False,
    )
    assert result.returncode != 0 and "row 1: clean is 6 tokens but corrupted is 7" in result.stderr
    names = {s["name"] for s in headlab_json("prompts", "list", env=env)["prompt_sets"]}
    assert names == {"ind", "ind2"}
    assert headlab_json("prompts", "show", "ind", "--limit", "100", env=env) == first


def test_import_reports_each_stage_and_streams_the_rows(store, tmp_path):
    from app import catalog

    n = 9000  # more than one validation chunk and several insert chunks
    rows = "".join(f"ab{'c' * (i % 5)}ab,ab{'d' * (i % 5)}ab,c,d\n" for i in range(n))
    path = tmp_path / "many.csv"
    path.write_text("clean,corrupted,correct,incorrect\n" + rows)
    seen: list[tuple[str, int, int]] = []
    record = catalog.import_prompt_set(
        store, path, "many", "zoo:induction-2l", progress=lambda *a: seen.append(a)
    )
    assert record.n_pairs == n
    size = path.stat().st_size
    assert [s for s in seen if s[0] == "read"][-1] == ("read", size, size)
    assert [s[1] for s in seen if s[0] == "check"] == [4096, 8192, n]
    assert [s for s in seen if s[0] == "store"][-1] == ("store", n, n)
    assert [s[0] for s in seen] == sorted(
        (s[0] for s in seen), key=["read", "check", "store"].index
    )
    stored = store.get_pairs(record.id)
    assert (stored[7].clean, stored[-1].corrupted) == ("abccab", f"ab{'d' * ((n - 1) % 5)}ab")


def test_device_map_from_the_cli_reaches_the_run(store, headlab_env, tmp_path):
    folder = make_hf_folder(tmp_path / "m", "gpt2")
    args = ["--model", f"hf:{folder}", "--steps", "2", "--batch", "1", "--seq-len", "8"]
    out = headlab_json("run", "throughput", *args, "--device-map", "balanced", env=headlab_env)
    assert out["status"] == "FINISHED" and out["config"]["device_map"] == "balanced"
    bad = headlab(
        "run", "throughput", *args, "--device-map", "sideways", env=headlab_env, check=False
    )
    assert bad.returncode == 2 and "sideways" in bad.stderr
