"""The catalog run kinds end to end: a real worker executes the queued run on zoo:induction-2l
against a real SQLite store, and the new prompt set / model lands with FINISHED (or nothing does).
"""

from __future__ import annotations

import pytest

from analysis.configs import ConfigError, parse_run_config
from analysis.configs.catalog import MAX_IMPORT_BYTES, parse_row_errors
from analysis.worker import ModelCache, Worker
from storage.errors import NotFound
from storage.records import PairIn, RunRecord, RunStatus

MODEL = "zoo:induction-2l"
HEADER = "clean,corrupted,correct,incorrect\n"


@pytest.fixture(scope="module")
def models() -> ModelCache:
    return ModelCache()  # one zoo model load for the whole module


def run(store, models: ModelCache, kind: str, **config) -> RunRecord:
    data = {"kind": kind, "model": MODEL, "device": "cpu", **config}
    config_json = parse_run_config(data).model_dump(mode="json")
    queued = store.enqueue_run(kind, config_json, MODEL, None, {}, "test")
    worker = Worker(store, worker_id="t", models=models, heartbeat_s=0.2)
    return worker.execute(store.claim_run(queued.id, worker.worker_id))


def test_import_stores_a_valid_file(store, models):
    content = HEADER + "abcab,abdab,c,d\nxyzx,xyqx,y,q\n"
    done = run(store, models, "prompts-import", name="imp", content=content, filename="p.csv")
    assert done.status is RunStatus.FINISHED, done.error
    record = store.get_prompt_set("imp")
    assert (record.n_pairs, record.source, record.model_spec) == (2, "import:p.csv", MODEL)
    assert [(p.clean, p.correct, p.incorrect) for p in store.get_pairs(record.id)] == [
        ("abcab", "c", "d"),
        ("xyzx", "y", "q"),
    ]
    assert done.summary["prompt_set"] == "imp" and done.summary["n_pairs"] == 2


def test_import_names_every_bad_row_and_stores_nothing(store, models):
    content = "\n".join(
        [
            '{"clean": "abcab", "corrupted": "abdab", "correct": "c", "incorrect": "d"}',
            '{"clean": "abcab", "corrupted": "abdabx", "correct": "c", "incorrect": "d"}',
            '{"clean": "abcab", "corrupted": "abdab", "correct": "cd", "incorrect": "d"}',
            '{"clean": "abcab", "corrupted": "abdab", "correct": "#999", "incorrect": "d"}',
        ]
    )
    done = run(
        store, models, "prompts-import", name="bad", content=content, format="jsonl",
        filename="bad.jsonl",
    )  # fmt: skip
    assert done.status is RunStatus.FAILED
    assert done.error.splitlines()[0] == "bad.jsonl: 3 problem(s) in 4 row(s); nothing was stored"
    rows = parse_row_errors(done.error)
    assert [r for r, _ in rows] == [2, 3, 4]
    assert "clean is 6 tokens but corrupted is 7" in rows[0][1]
    assert "'cd' is 2 tokens" in rows[1][1]
    assert "#999 is outside the vocabulary" in rows[2][1]
    assert store.list_prompt_sets() == []


def test_import_file_errors_and_taken_names(store, models):
    done = run(store, models, "prompts-import", name="x", content="clean,answer\na,b\n")
    assert done.status is RunStatus.FAILED and "unknown column(s) 'answer'" in done.error
    store.add_prompt_set("taken", [PairIn("ab", "ac", "a", "b")], "test", None)
    done = run(store, models, "prompts-import", name="taken", content=HEADER + "ab,ac,a,b\n")
    assert done.status is RunStatus.FAILED and "named 'taken' already exists" in done.error
    assert store.get_prompt_set("taken").source == "test"  # untouched
    with pytest.raises(ConfigError, match="imports through the web take up to 2 MB"):
        parse_run_config(
            {"kind": "prompts-import", "model": MODEL, "name": "big",
             "content": "x" * (MAX_IMPORT_BYTES + 1)}
        )  # fmt: skip


def test_generate_stores_the_generated_set(store, models):
    from analysis.prompts.generators import generate_pairs

    done = run(store, models, "prompts-generate", task="induction", n=6, seed=3)
    assert done.status is RunStatus.FINISHED, done.error
    name = "induction-induction-2l-6-s3"
    record = store.get_prompt_set(name)
    assert (record.n_pairs, record.source, record.meta) == (
        6,
        "generate:induction",
        {"task": "induction", "seed": 3},
    )
    expected = generate_pairs(
        models.get(parse_run_config({"kind": "heads", "model": MODEL, "device": "cpu"})),
        "induction",
        6,
        3,
    )
    stored = store.get_pairs(record.id)
    assert [(p.clean, p.corrupted, p.correct) for p in stored] == [
        (p.clean, p.corrupted, p.correct) for p in expected
    ]
    done = run(store, models, "prompts-generate", task="ioi", n=2, name="ioi-set")
    assert done.status is RunStatus.FAILED and "character-level" in done.error
    with pytest.raises(NotFound):
        store.get_prompt_set("ioi-set")


class RacingModels(ModelCache):
    """Another client stores a set of the same name while the worker loads the model."""

    def __init__(self, inner: ModelCache, store, name: str) -> None:
        super().__init__()
        self.inner, self.store, self.name = inner, store, name

    def get(self, config):
        self.store.add_prompt_set(self.name, [PairIn("ab", "ac", "a", "b")], "other", None)
        return self.inner.get(config)


def test_name_taken_while_running_fails_the_run_and_keeps_the_other_set(store, models):
    done = run(store, RacingModels(models, store, "race"), "prompts-generate", n=2, name="race")
    assert done.status is RunStatus.FAILED
    assert "a prompt set named 'race' already exists" in done.error
    assert store.get_prompt_set("race").source == "other"


def test_model_add_records_facts_and_respects_replace(store, models):
    from analysis.models import model_facts

    done = run(store, models, "model-add", name="ind")
    assert done.status is RunStatus.FINISHED, done.error
    record = store.get_model("ind")
    assert record.spec == MODEL and record.facts["n_layers"] == 2 and record.facts["n_heads"] == 4
    assert record.facts == model_facts(models.get(parse_run_config(
        {"kind": "heads", "model": MODEL, "device": "cpu"})))  # fmt: skip
    assert done.summary["facts"] == record.facts
    again = run(store, models, "model-add", name="ind")
    assert again.status is RunStatus.FAILED and "named 'ind' already exists" in again.error
    replaced = run(store, models, "model-add", name="ind", replace=True)
    assert replaced.status is RunStatus.FINISHED
    assert run(store, models, "model-add").status is RunStatus.FINISHED  # default name
    assert store.get_model("induction-2l").spec == MODEL


def test_a_failed_load_leaves_the_cache_empty_not_stale(tmp_path):
    from analysis.configs import parse_run_config
    from analysis.models import ModelLoadError

    cache = ModelCache()
    zoo = parse_run_config({"kind": "throughput", "model": MODEL})
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "config.json").write_text("{}")  # no architecture, no weights
    broken = parse_run_config({"kind": "throughput", "model": f"hf:{tmp_path / 'not-a-model'}"})
    assert cache.get(zoo) is not None
    with pytest.raises(ModelLoadError):
        cache.get(broken)
    assert cache.get(zoo) is not None  # reloaded, not the None the failed load left
