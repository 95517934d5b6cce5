"""Torch-free services behind the pages: prompt-file validation, launch forms, figure specs."""

from __future__ import annotations

import json

import pytest

from app.services.launch import LaunchError, build_config, enqueue, form_fields
from app.services.prompt_upload import parse_prompt_file

HEADER = "clean,corrupted,correct,incorrect\n"


@pytest.mark.parametrize(
    ("name", "data", "row", "needle"),
    [
        ("p.csv", HEADER + "a,b,x,y\nc,d,,y\n", 2, "empty 'correct' (line 3)"),
        ("p.csv", HEADER + "a,b,x,x\n", 1, "correct and incorrect are equal"),
        ("p.csv", HEADER + "a,b,x,y\na,b,x,y\n", 2, "duplicate of row 1"),
        ("p.csv", "clean,corrupted,correct\na,b,x\n", None, "missing column(s) incorrect"),
        ("p.csv", "", None, "the file is empty"),
        ("p.txt", HEADER, None, "unsupported file type"),
        ("p.jsonl", '{"clean": "a"}\nnot json\n', None, "line 2: not valid JSON"),
        (
            "p.json",
            json.dumps(
                [
                    {
                        "clean": "a",
                        "corrupted": "b",
                        "correct": "x",
                        "incorrect": "y",
                        "correct_id": "seven",
                    }
                ]
            ),
            1,
            "integer",
        ),
    ],
)
def test_bad_prompt_files_name_the_row(name, data, row, needle):
    parsed = parse_prompt_file(name, data.encode())
    assert parsed.pairs == []
    assert any(e.row == row and needle in e.message for e in parsed.errors), parsed.errors


def test_non_utf8_is_named():
    parsed = parse_prompt_file("p.csv", HEADER.encode() + b"\xff\xfe,b,x,y\n")
    assert "not UTF-8" in parsed.errors[0].message


def test_good_prompt_file_keeps_ids_and_meta():
    data = HEADER.rstrip("\n") + ',correct_id,meta\na b,c d,x,y,7,"{""task"": ""ioi""}"\n'
    parsed = parse_prompt_file("p.csv", data.encode())
    assert parsed.errors == []
    assert parsed.pairs[0].correct_id == 7 and parsed.pairs[0].meta == {"task": "ioi"}


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (HEADER.rstrip("\n") + ",task\na,b,x,y,ioi\n", "unknown column(s) task"),
        (HEADER.rstrip("\n") + ",meta\na,b,x,y,[1]\n", "meta must be a JSON object (line 2)"),
    ],
)
def test_unknown_columns_and_bad_meta_are_named(data, needle):
    parsed = parse_prompt_file("p.csv", data.encode())
    assert any(needle in e.message for e in parsed.errors), parsed.errors


def test_launch_form_covers_every_field_with_defaults():
    specs = {s.name: s for s in form_fields("throughput")}
    assert {"model", "prompt_set", "device", "dtype", "seed", "steps"} <= set(specs)
    assert specs["device"].widget == "choice" and "cpu" in specs["device"].choices
    assert specs["steps"].widget == "integer" and specs["steps"].default == 20


def test_launch_errors_name_fields_and_nothing_is_written(store):
    with pytest.raises(LaunchError) as info:
        enqueue(store, "throughput", {"model": "zoo:x", "steps": 0, "batch": "many"})
    assert set(info.value.fields) == {"model", "steps", "batch"}
    assert "unknown zoo model 'x'" in info.value.fields["model"]
    with pytest.raises(LaunchError) as info:
        enqueue(store, "throughput", {"model": "zoo:induction-2l", "prompt_set": "nope"})
    assert "no prompt set named 'nope'" in info.value.fields["prompt_set"]
    assert store.count_runs() == 0
    config = build_config(
        "throughput", {"model": "zoo:induction-2l", "steps": 3.0, "device": "cpu"}
    )
    assert config["steps"] == 3 and config["device"] == "cpu"
    run = enqueue(store, "throughput", {"model": "zoo:induction-2l", "steps": "4"})
    assert run.config["steps"] == 4 and run.versions["dash"]
