"""Prompt files, validation against a model, and generators (on zoo:induction-2l)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from analysis.models import load_model
from analysis.prompts.files import (
    MAX_FILE_BYTES,
    PROGRESS_ROWS,
    Answer,
    PromptFileError,
    RawPair,
    iter_prompt_file,
    read_prompt_file,
    write_prompt_file,
)
from analysis.prompts.generators import GeneratorError, generate_pairs
from analysis.prompts.validate import (
    CHUNK,
    PromptValidationError,
    TokenizerView,
    iter_valid_pairs,
    validate_pairs,
)
from storage.records import PairIn


@pytest.fixture(scope="module")
def model():
    return load_model("zoo:induction-2l")


@pytest.fixture(scope="module")
def view(model):
    return TokenizerView.of(model)


def write(tmp_path, name, content) -> object:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_csv_and_jsonl_parse_with_answer_rule(tmp_path):
    csv_path = write(tmp_path, "a.csv", "clean,corrupted,correct,incorrect\nabcab,abdab,c,#7\n")
    (row,) = read_prompt_file(csv_path)
    assert row.correct.text == "c" and row.correct.token_id is None
    assert row.incorrect.token_id == 7
    jsonl = (
        '{"clean": "ab", "corrupted": "ac", "correct": 5, "incorrect": "#6", "meta": {"k": 1}}\n'
    )
    (row,) = read_prompt_file(write(tmp_path, "a.jsonl", jsonl))
    assert row.correct.token_id == 5 and row.incorrect.token_id == 6 and row.meta == {"k": 1}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "is empty"),
        ("header.csv", "clean,corrupted,correct,incorrect\n", "has no pairs"),
        ("missing.csv", "clean,corrupted,correct\na,b,c\n", "missing column"),
        ("extra.csv", "clean,corrupted,correct,incorrect,x\na,b,c,d,e\n", "unknown column"),
        ("bytes.csv", b"clean,corrupted,correct,incorrect\n\xff\xfe,b,c,d\n", "line 2.*UTF-8"),
        ("cells.csv", "clean,corrupted,correct,incorrect\na,b,c\n", "row 1.*number of cells"),
        ("bad.jsonl", '{"clean": "a"\n', "row 1.*not valid JSON"),
        ("keys.jsonl", '{"clean": "a", "corrupted": "b", "correct": "c"}\n', "missing column"),
        ("meta.csv", "clean,corrupted,correct,incorrect,meta\na,b,c,d,[1]\n", "meta must be"),
        ("x.txt", "clean\n", "csv or .jsonl"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, name, content, message):
    with pytest.raises(PromptFileError, match=message):
        read_prompt_file(write(tmp_path, name, content))


def test_validation_names_each_bad_row(tmp_path, view):
    rows = "\n".join(
        [
            "clean,corrupted,correct,incorrect",
            "abcab,abdab,c,d",  # row 1: fine
            "abcab,abdabx,c,d",  # row 2: different lengths
            "abcab,abdab,cd,d",  # row 3: multi-token answer
            f"{'a' * 70},{'b' * 70},c,d",  # row 4: longer than the context
            "abcab,abdab,c,#999",  # row 5: id outside the vocabulary
            "ABC,abc,c,d",  # row 6: characters the tokenizer does not know
            ",abc,c,d",  # row 7: empty clean
        ]
    )
    raws = read_prompt_file(write(tmp_path, "bad.csv", rows + "\n"))
    with pytest.raises(PromptValidationError) as info:
        validate_pairs(view, raws)
    text = str(info.value)
    for expected in (
        "row 2: clean is 6 tokens but corrupted is 7",
        "row 3: correct answer 'cd'",
        "row 4: prompt is 71 tokens",
        "row 5: incorrect token id #999",
        "row 6: clean has characters",
        "row 7: clean is empty",
    ):
        assert expected in text
    assert "row 1" not in text


def test_empty_set_is_refused(view):
    with pytest.raises(PromptValidationError, match="empty"):
        validate_pairs(view, [])


def test_export_import_round_trip(tmp_path, view):
    pairs = [
        PairIn("abcab", "abdab", "c", "d", meta={"k": 1, "s": "x,y"}),
        PairIn("ab 'q', x", "ab 'r', x", "a", "b", correct_id=3, incorrect_id=4),
    ]
    pairs = validate_pairs(view, [r for r in _as_raw(pairs)])
    for fmt in ("csv", "jsonl"):
        path = write(tmp_path, f"set.{fmt}", write_prompt_file(pairs, fmt))
        assert validate_pairs(view, read_prompt_file(path)) == pairs


def _as_raw(pairs):
    from analysis.prompts.validate import pairs_as_raw

    return pairs_as_raw(pairs)


def test_induction_generator_is_valid_seeded_and_meaningful(model):
    pairs = generate_pairs(model, "induction", 12, seed=3)
    assert pairs == generate_pairs(model, "induction", 12, seed=3)
    assert pairs != generate_pairs(model, "induction", 12, seed=4)
    from analysis.prompt_batch import build_pair_batch

    batch = build_pair_batch(model, pairs)
    with torch.no_grad():
        rows = torch.arange(len(pairs))
        for tokens, sign in ((batch.clean, 1), (batch.corrupted, -1)):
            logits = model(tokens)[rows, batch.last]
            diff = logits[rows, batch.correct] - logits[rows, batch.incorrect]
            assert (sign * diff > 0).float().mean() >= 0.9  # induction picks the answer


def test_induction_contrast_generator_is_the_zoo_circuit_contrast(model):
    from analysis.circuits.zoo_tasks import induction_pairs

    pairs = generate_pairs(model, "induction-contrast", 10, seed=5)
    assert pairs == induction_pairs(10, seed=5)  # the pairs the circuit gate is scored on
    for pair in pairs:
        assert all(a != b for a, b in zip(pair.clean, pair.corrupted, strict=True))


def test_generators_refuse_tasks_the_tokenizer_cannot_express(model):
    with pytest.raises(GeneratorError, match="word-level"):
        generate_pairs(model, "ioi", 3)
    with pytest.raises(GeneratorError, match="digits"):
        generate_pairs(model, "greater-than", 3)
    with pytest.raises(GeneratorError, match="unknown task"):
        generate_pairs(model, "sorting", 3)


PARITY_TEXTS = [
    "",
    " ",
    "abcab",
    " the cat sat",
    "def f(x):\n    return x.y  # é€😀",
    "<bos>abc",
    "a" * 300,
    "ABC?!",
]


@pytest.mark.parametrize("spec", ["zoo:induction-2l", "zoo:greater-than-3l", "zoo:code-6l"])
@pytest.mark.parametrize("tokenizer_prepends_bos", [True, False])
def test_batched_token_ids_equal_to_tokens(spec, tokenizer_prepends_bos):
    zoo_model = load_model(spec)
    zoo_model.cfg.tokenizer_prepends_bos = tokenizer_prepends_bos
    zoo_view = TokenizerView.of(zoo_model)
    for prepend_bos in (None, True, False):
        batched = zoo_view.token_ids(PARITY_TEXTS, prepend_bos)
        for text, ids in zip(PARITY_TEXTS, batched, strict=True):
            reference = zoo_model.to_tokens(text, prepend_bos=prepend_bos, truncate=False)
            assert ids == reference[0].tolist(), (spec, prepend_bos, text)


def test_validation_in_chunks_reports_rows_across_chunks(view, monkeypatch):
    import analysis.prompts.validate as validate

    monkeypatch.setattr(validate, "CHUNK", 3)
    pairs = generate_pairs(view.model, "induction", 8, seed=2)
    raws = [r for r in _as_raw(pairs)]
    bad = raws[6]
    raws[6] = type(bad)(bad.row, bad.clean, bad.corrupted + "ab", bad.correct, bad.incorrect, {})
    seen: list[tuple[int, int]] = []
    with pytest.raises(PromptValidationError, match="row 7: clean is"):
        validate_pairs(view, raws, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(3, 8), (6, 8), (8, 8)]
    assert validate_pairs(view, _as_raw(pairs)) == pairs


def test_rows_stream_up_to_the_bad_one(tmp_path):
    text = "clean,corrupted,correct,incorrect\nab,ac,a,b\nab,ac,a,b\nab,ac\n"
    rows = iter_prompt_file(write(tmp_path, "s.csv", text))
    assert [next(rows).row, next(rows).row] == [1, 2]
    with pytest.raises(PromptFileError, match="row 3.*number of cells"):
        next(rows)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings_and_bom(tmp_path, newline):
    lines = ["clean,corrupted,correct,incorrect", '"a,b",ab,a,b', "cd,ce,c,d"]
    content = "\ufeff" + newline.join(lines) + newline
    rows = read_prompt_file(write(tmp_path, "e.csv", content.encode()))
    assert [(r.clean, r.correct.text) for r in rows] == [("a,b", "a"), ("cd", "c")]
    jsonl = newline.join(['{"clean":"a","corrupted":"b","correct":"a","incorrect":"b"}'] * 2)
    assert len(read_prompt_file(write(tmp_path, "e.jsonl", jsonl))) == 2


def test_file_over_the_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:  # sparse: no disk is used
        handle.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(PromptFileError, match=r"huge.csv is 50.0 MB, more than the 50 MB limit"):
        next(iter_prompt_file(path))


def test_progress_reports_bytes_read(tmp_path):
    n = PROGRESS_ROWS * 2 + 5
    text = "clean,corrupted,correct,incorrect\n" + "ab,ac,a,b\n" * n
    path = write(tmp_path, "p.csv", text)
    seen: list[tuple[int, int]] = []
    assert sum(1 for _ in iter_prompt_file(path, progress=lambda *a: seen.append(a))) == n
    size = path.stat().st_size
    assert len(seen) == 3 and seen[-1] == (size, size)
    assert all(done <= size for done, _ in seen) and seen[0][0] < seen[1][0] < size


def test_valid_pairs_stop_at_the_first_bad_row_and_report_all(view):
    good = RawPair(0, "abcab", "abdab", Answer("c"), Answer("d"))
    rows = [dataclasses.replace(good, row=i + 1) for i in range(CHUNK + 3)]
    rows[CHUNK + 1] = dataclasses.replace(good, row=CHUNK + 2, corrupted="abdabx")
    rows[1] = dataclasses.replace(good, row=2, correct=Answer("cd"))
    done: list[int] = []
    yielded = []
    with pytest.raises(PromptValidationError) as info:
        for pair in iter_valid_pairs(view, iter(rows), done.append):
            yielded.append(pair)
    assert len(yielded) == 1  # row 1 only: nothing after the first problem
    assert done == [CHUNK, CHUNK + 3]
    assert info.value.problems[0].startswith("row 2: correct answer")
    assert info.value.problems[1].startswith(f"row {CHUNK + 2}: clean is")


def test_the_configs_task_list_names_every_generator():
    from analysis.configs.catalog import PROMPT_TASKS
    from analysis.prompts.generators import GENERATORS

    assert set(PROMPT_TASKS) == set(GENERATORS)
