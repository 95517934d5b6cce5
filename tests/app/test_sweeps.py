"""Sweeps from the CLI and the Python side: the grid they expand to, every combination validated
before anything is stored, and a sweep run inline to the end."""

from __future__ import annotations

import json

import pytest

from app import catalog
from app.launching import LaunchRefused
from app.sweeps import MAX_RUNS, SweepSpec, child_configs, parse_assignments
from tests.app.cli_run import run_cli

MODEL = "zoo:induction-2l"


def test_the_grid_is_models_by_prompt_sets_by_varied_values() -> None:
    spec = SweepSpec(
        "circuit",
        [MODEL, "zoo:greater-than-3l"],
        ["a", "b", "c"],
        fixed={"threshold": 0.5},
        vary={"method": ["eap", "eap-ig"]},
    )
    configs = child_configs(spec)
    assert spec.size() == len(configs) == 12
    seen = {(c.model, c.prompt_set, c.method) for c in configs}  # type: ignore[attr-defined]
    assert len(seen) == 12 and all(c.threshold == 0.5 for c in configs)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (SweepSpec("nope", [MODEL]), "unknown run kind 'nope'"),
        (SweepSpec("heads", []), "at least one --model"),
        (SweepSpec("heads", [MODEL], ["a"], vary={"max_prompts": [2, "x"]}), "max_prompts='x'"),
        (SweepSpec("heads", [MODEL], ["a"], fixed={"nosuch": 1}), "nosuch: Extra inputs"),
        (SweepSpec("heads", [MODEL], ["a"], {"seed": 1}, {"seed": [2, 3]}), "also fixed"),
        (SweepSpec("heads", [MODEL], ["a"], vary={"seed": []}), "at least one value"),
        (SweepSpec("heads", [MODEL], ["a"], vary={"seed": list(range(MAX_RUNS + 1))}), "more than"),
    ],
)
def test_a_bad_combination_is_named(spec: SweepSpec, message: str) -> None:
    with pytest.raises(LaunchRefused, match=message):
        child_configs(spec)


def test_assignments_parse_json_values_and_refuse_malformed_ones() -> None:
    assert parse_assignments(["top-k=5", "method=eap"], "--set", many=False) == {
        "top_k": 5,
        "method": "eap",
    }
    assert parse_assignments(["tau=0.1,0.01", "m=a,true"], "--vary", many=True) == {
        "tau": [0.1, 0.01],
        "m": ["a", True],
    }
    with pytest.raises(LaunchRefused, match="write it as option=value"):
        parse_assignments(["tau"], "--vary", many=True)
    with pytest.raises(LaunchRefused, match="twice"):
        parse_assignments(["a=1", "a=2"], "--set", many=False)


def test_cli_sweep_queues_runs_then_runs_them_inline(store, capsys) -> None:
    catalog.generate_prompt_set(store, "induction", MODEL, 6, 0, "ind")
    code, out, err = run_cli(
        capsys, "sweep", "start", "heads", "--model", MODEL, "--prompts", "ind",
        "--vary", "max-prompts=2,3", "--set", "seed=4", "--json",
    )  # fmt: skip
    assert code == 0, err
    queued = json.loads(out)
    assert queued["sweep"]["n_runs"] == 2 and queued["sweep"]["counts"] == {"QUEUED": 2}
    assert queued["sweep"]["name"] == "heads-sweep-1"

    code, out, err = run_cli(
        capsys, "sweep", "start", "circuit", "--model", MODEL, "--prompts", "ind",
        "--vary", "method=eap,eap-ig", "--name", "methods", "--wait", "--json",
    )  # fmt: skip
    assert code == 0, err
    done = json.loads(out)
    assert done["sweep"]["done"] and done["sweep"]["counts"] == {"FINISHED": 2}
    assert {r["status"] for r in done["runs"]} == {"FINISHED"}
    runs = store.sweep_runs(done["sweep"]["id"])
    assert [r.config["method"] for r in runs] == ["eap", "eap-ig"]
    assert all(not store.nodes(r.id).empty for r in runs)

    code, out, _ = run_cli(capsys, "sweep", "list", "--json")
    assert [s["name"] for s in json.loads(out)["sweeps"]] == ["methods", "heads-sweep-1"]
    code, out, _ = run_cli(capsys, "sweep", "show", "methods")
    assert code == 0 and "2/2 ended" in out and "method=eap-ig" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--vary", "max-prompts=2,x"), 1, "max_prompts='x'"),
        (("--vary", "max-prompts"), 1, "write it as option=value"),
        (("--prompts", "nope"), 1, "no prompt set named 'nope'"),
        (("--name", "taken"), 3, "a sweep named 'taken' already exists"),
    ],
)
def test_cli_sweep_errors_are_one_line_and_store_nothing(store, capsys, args, code, message):
    catalog.generate_prompt_set(store, "induction", MODEL, 4, 0, "ind")
    run_cli(
        capsys, "sweep", "start", "heads", "--model", MODEL, "--prompts", "ind", "--name", "taken"
    )
    runs_before = store.count_runs()
    base = ["sweep", "start", "heads", "--model", MODEL]
    if "--prompts" not in args:
        base += ["--prompts", "ind"]
    got, out, err = run_cli(capsys, *base, *args)
    assert got == code and message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert store.count_runs() == runs_before and len(store.list_sweeps()) == 1
