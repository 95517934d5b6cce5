"""The bad-input corpus: every kind of wrong input a user can give the CLI, held to account.

Each case runs ``headlab …`` in-process against a real SQLite store seeded with a prompt set
and a finished run with artifacts, and asserts the exit code, the exact message (a regex on
the first line, which starts ``error:``), that no traceback is printed, that every line of
output is printable (hostile names are escaped) — and that the store is unchanged: every table's
rows and every file under the data directory, byte for byte.

Rows a run-time failure adds on purpose (a FAILED run that records why) are the one exception,
checked separately in ``test_a_run_on_a_set_for_another_tokenizer_fails_and_keeps_the_rest``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from analysis.prompts.files import MAX_FILE_BYTES
from app import catalog
from app.cli import main
from storage.orm import metadata, runs
from storage.records import PairIn
from storage.settings import load_settings

from .test_export_cli import _output

HEADER = "clean,corrupted,correct,incorrect\n"
MODEL = "zoo:induction-2l"


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    message: str  # regex matched against the first line of output
    code: int = 1
    files: dict[str, bytes] = field(default_factory=dict)  # written under tmp_path first
    lines: int = 1  # output lines (a row report lists each bad row on its own line)


def _import(file: str, name: str = "new") -> tuple[str, ...]:
    return ("prompts", "import", "{tmp}/" + file, "--name", name, "--model", MODEL)


def _on_ind(kind: str, *args: str) -> tuple[str, ...]:
    return ("run", kind, "--model", MODEL, "--prompts", "ind", *args)


def _csv(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


CASES = [
    # models and prompt sets that do not exist
    Case("unknown zoo model", ("prompts", "generate", "induction", "--model", "zoo:nope"),
         r"^error: unknown zoo model .nope.; the zoo has: code-6l, greater-than-3l, "
         r"induction-2l, induction-2l-early$"),
    Case("missing hf folder", ("run", "heads", "--model", "hf:/no/such", "--prompts", "ind"),
         r"^error: invalid heads run: model: hf:/no/such: no such folder /no/such$"),
    Case("unknown prompt set", ("run", "heads", "--model", MODEL, "--prompts", "nope"),
         r"^error: invalid heads run: prompt_set: no prompt set named 'nope'"),
    Case("unknown run", ("runs", "show", "999"), r"^error: run 999 does not exist"),
    # explore: text that cannot be explored is refused before anything is queued
    Case("explore empty text", ("run", "explore", "--model", MODEL, "--text", "  "),
         r"^error: invalid explore run: text: it is empty; type or paste some text$"),
    Case("explore text and prompts", ("run", "explore", "--model", MODEL, "--text", "ab",
                                      "--prompts", "ind"),
         r"^error: invalid explore run: config: text: give the text or --prompts NAME, not "
         r"both$"),
    Case("explore unknown model", ("run", "explore", "--model", "zoo:nope", "--text", "ab"),
         r"^error: invalid explore run: model: unknown zoo model 'nope'; the zoo has: "),
    # circuit and path-patching settings that cannot run
    Case("acdc prune without acdc", _on_ind("circuit", "--method", "eap", "--acdc-prune", "0.1"),
         r"^error: invalid circuit run: config: acdc_prune only applies to --method acdc$"),
    Case("acdc prune above 1", _on_ind("circuit", "--method", "acdc", "--acdc-prune", "1.5"),
         r"^error: invalid circuit run: acdc_prune: Input should be less than or equal to 1$"),
    Case("acdc prune nan", _on_ind("circuit", "--method", "acdc", "--acdc-prune", "nan"),
         r"^error: invalid circuit run: acdc_prune: Input should be a finite number$"),
    Case("infinite tau", _on_ind("circuit", "--method", "acdc", "--tau", "inf"),
         r"^error: invalid circuit run: tau: Input should be a finite number$"),
    Case("path-patch sender not a head",
         _on_ind("path-patch", "--senders", "foo", "--receivers", "logits"),
         r"^error: invalid path-patch run: senders: 'foo' is not a head name; heads are named "
         r"a\{L\}\.h\{H\}, e\.g\. a0\.h2$"),
    Case("path-patch receiver before sender",
         _on_ind("path-patch", "--senders", "a1.h0", "--receivers", "a0.h1"),
         r"^error: invalid path-patch run: config: receivers: a0\.h1 is not after sender "
         r"a1\.h0; a head reads only heads of earlier layers"),
    Case("too many generated pairs",
         ("prompts", "generate", "induction", "--model", MODEL, "--n", "10000000"),
         r"^error: n must be between 1 and 100,000 pairs, got 10,000,000"),
    # rows that do not fit the tokenizer
    Case("unequal lengths", _import("a.csv"), r"^error: a.csv: 1 problem\(s\) in 1 row\(s\):$",
         files={"a.csv": _csv("abcab,abdabx,c,d")}, lines=2),
    Case("multi-token answer", _import("a.csv"), r"^error: a.csv: 1 problem",
         files={"a.csv": _csv("abcab,abdab,cd,d")}, lines=2),
    Case("over-long prompt", _import("a.csv"), r"^error: a.csv: 1 problem",
         files={"a.csv": _csv(f"{'a' * 70},{'b' * 70},c,d")}, lines=2),
    Case("unknown characters", _import("a.csv"), r"^error: a.csv: 1 problem",
         files={"a.csv": _csv("ABC,abc,c,d")}, lines=2),
    Case("id outside the vocabulary", _import("a.csv"), r"^error: a.csv: 1 problem",
         files={"a.csv": _csv("abcab,abdab,c,#99999")}, lines=2),
    Case("three bad rows", _import("a.csv"), r"^error: a.csv: 3 problem\(s\) in 4 row\(s\):$",
         files={"a.csv": _csv("abcab,abdab,c,d", ",ab,c,d", "ab,abc,c,d", "ab,ab,c,c d")},
         lines=4),
    # files that cannot be read
    Case("empty file", _import("e.csv"), r"^error: e.csv is empty; it needs a header row",
         files={"e.csv": b""}),
    Case("header only", _import("h.csv"), r"^error: h.csv has no pairs; add at least one row$",
         files={"h.csv": HEADER.encode()}),
    Case("malformed JSONL", _import("m.jsonl"), r"^error: row 2 \(line 3\): not valid JSON",
         files={"m.jsonl": b'{"clean":"ab","corrupted":"ac","correct":"a","incorrect":"b"}\n'
                b'\n{"clean": "ab",\n'}),
    Case("JSONL array row", _import("m.jsonl"), r"^error: row 1 \(line 1\): expected a JSON object",
         files={"m.jsonl": b'["ab", "ac", "a", "b"]\n'}),
    Case("missing column", _import("c.csv"), r"^error: c.csv header: missing column\(s\) incorrect",
         files={"c.csv": b"clean,corrupted,correct\nab,ac,a\n"}),
    Case("unknown column", _import("c.csv"), r"^error: c.csv header: unknown column\(s\) 'x'",
         files={"c.csv": b"clean,corrupted,correct,incorrect,x\nab,ac,a,b,1\n"}),
    Case("ragged row", _import("c.csv"), r"^error: row 2 \(line 3\): has a different number",
         files={"c.csv": _csv("ab,ac,a,b", "ab,ac,a")}),
    Case("not UTF-8", _import("u.csv"), r"^error: u.csv: line 2 has bytes that are not UTF-8",
         files={"u.csv": HEADER.encode() + b"\xff\xfe,ab,a,b\n"}),
    Case("meta not an object", _import("j.csv"), r"^error: row 1: meta must be a JSON object",
         files={"j.csv": b"clean,corrupted,correct,incorrect,meta\nab,ac,a,b,[1]\n"}),
    Case("unknown suffix", _import("p.txt"), r"^error: p.txt: cannot tell the format from '.txt'",
         files={"p.txt": _csv("ab,ac,a,b")}),
    Case("no such file", _import("gone.csv"), r"^error: .*/gone.csv: no such file$"),
    Case("a folder", _import("dir.csv"), r"^error: .*/dir.csv: no such file$",
         files={"dir.csv/inner": b""}),
    Case("over the size limit", _import("big.csv"),
         r"^error: big.csv is 50.0 MB, more than the 50 MB limit for a prompt file; split it",
         files={"big.csv": b"sparse"}),
    # hostile names
    Case("newline in a file name", _import("a\nb.csv"), r"^error: a\\nb.csv: 1 problem",
         files={"a\nb.csv": _csv("abcab,abdabx,c,d")}, lines=2),
    Case("escape in a file name", _import("\x1b[2Jx.csv"), r"^error: \\x1b\[2Jx.csv is empty",
         files={"\x1b[2Jx.csv": b""}),
    Case("newline in a set name", _import("ok.csv", "bad\nname"),
         r"^error: the prompt set name 'bad\\nname' holds control characters \('\\n'\)",
         files={"ok.csv": _csv("abcab,abdab,c,d")}),
    Case("escape in a model name", ("models", "add", MODEL, "--name", "m\x1b[31m"),
         r"^error: the model name 'm\\x1b\[31m' holds control characters"),
    Case("padded set name", _import("ok.csv", " ind"),
         r"^error: the prompt set name ' ind' starts or ends with spaces",
         files={"ok.csv": _csv("abcab,abdab,c,d")}),
    Case("over-long set name", _import("ok.csv", "x" * 121),
         r"^error: the prompt set name is 121 characters, more than 120",
         files={"ok.csv": _csv("abcab,abdab,c,d")}),
    Case("empty set name", _import("ok.csv", ""), r"^error: a prompt set needs a non-empty name$",
         files={"ok.csv": _csv("abcab,abdab,c,d")}),
    Case("taken set name", _import("ok.csv", "ind"),
         r"^error: a prompt set named 'ind' already exists", code=3,
         files={"ok.csv": _csv("abcab,abdab,c,d")}),
    # outputs that cannot be written, stored results that cannot be read
    Case("export into a missing folder",
         ("export", "figure", "{run}", "--kind", "heatmap", "--metric", "dla", "--out",
          "{tmp}/no/such/dir/x.svg"), r"^error: .*no/such/dir"),
    Case("corrupt artifact", ("export", "figure", "{run}", "--kind", "pattern", "--head", "1.2",
                              "--prompt", "0", "--out", "{tmp}/p.svg"),
         r"^error: .*'patterns.safetensors' is corrupt"),
    Case("missing artifact", ("export", "bundle", "{run}", "--out", "{tmp}/b.zip"),
         r"^error: .*'tokens.json'.*(missing|no longer)"),
]  # fmt: skip


def snapshot(db_url: str, home: Path) -> dict[str, Any]:
    """Every row of every table, and every file under the data directory but the database."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        tables = {
            t.name: sorted(repr(tuple(row)) for row in conn.execute(select(t)))
            for t in metadata.sorted_tables
        }
    engine.dispose()
    files = {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.startswith("headlab.db")
    }
    return {"tables": tables, "files": files}


@pytest.fixture
def seeded(store, tmp_path: Path) -> int:
    pairs = [PairIn("abcab", "abdab", "c", "d"), PairIn("abdab", "abcab", "d", "c")]
    prompt_set = store.add_prompt_set("ind", pairs, source="test", model_spec=MODEL)
    config = {"kind": "patch", "model": MODEL, "seed": 7, "prompt_set": "ind"}
    run = store.enqueue_run("patch", config, MODEL, prompt_set.id, {"headlab": "0.1.0"}, "git:0")
    assert store.claim_next_run("w1") is not None
    folder = tmp_path / "job"
    folder.mkdir()
    store.finish_run(run.id, _output(folder))
    return run.id


def _prepare(case: Case, tmp_path: Path, store: Any, run_id: int) -> list[str]:
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "big.csv":
            with path.open("wb") as handle:  # sparse: uses no disk
                handle.truncate(MAX_FILE_BYTES + 1)
        else:
            path.write_bytes(content)
    if case.id == "corrupt artifact":
        path = Path(store.get_artifact(run_id, "patterns.safetensors").path)
        path.write_bytes(b"\0" * path.stat().st_size)
    if case.id == "missing artifact":
        Path(store.get_artifact(run_id, "tokens.json").path).unlink()
    return [a.format(tmp=tmp_path, run=run_id) for a in case.args]


def run_cli(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    try:
        main(args)
        code = 0
    except SystemExit as ended:
        code = ended.code if isinstance(ended.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_error_and_changes_nothing(
    case: Case, seeded: int, store, tmp_path: Path, capsys
) -> None:
    args = _prepare(case, tmp_path, store, seeded)
    settings = load_settings()
    before = snapshot(settings.db_url, settings.home)
    code, text = run_cli(capsys, args)
    lines = text.strip().splitlines()
    assert code == case.code, text
    assert "Traceback" not in text
    assert re.search(case.message, lines[0]), text
    assert len(lines) == case.lines, text
    assert all(line.isprintable() for line in lines), text
    assert snapshot(settings.db_url, settings.home) == before


def _assert_kept(before: dict[str, Any], settings: Any) -> None:
    """Every file and every row of ``before`` (a ``snapshot``) is still stored, unchanged."""
    after = snapshot(settings.db_url, settings.home)
    assert after["files"] == before["files"]
    for table, rows in before["tables"].items():
        assert set(rows) <= set(after["tables"][table]), table


def test_a_run_on_a_set_for_another_tokenizer_fails_and_keeps_the_rest(
    seeded: int, store, capsys
) -> None:
    catalog.generate_prompt_set(store, "induction", MODEL, 40, 0, "gen")
    settings = load_settings()
    before = snapshot(settings.db_url, settings.home)
    code, text = run_cli(capsys, ["run", "heads", "--model", "zoo:code-6l", "--prompts", "gen"])
    assert code == 1 and "Traceback" not in text
    assert re.search(
        r"prompt set 'gen' was validated for zoo:induction-2l, and on zoo:code-6l it has", text
    )
    _assert_kept(before, settings)
    engine = create_engine(settings.db_url)
    with engine.connect() as conn:
        states = [row.status for row in conn.execute(select(runs.c.status).order_by(runs.c.id))]
    engine.dispose()
    assert states == ["FINISHED", "FAILED"]


def test_a_path_patch_sender_beyond_the_model_fails_the_run_and_keeps_the_rest(
    seeded: int, capsys
) -> None:
    """Head names are checked against the model when it is loaded: the run fails saying which
    heads exist; everything stored before stays."""
    settings = load_settings()
    before = snapshot(settings.db_url, settings.home)
    args = _on_ind("path-patch", "--senders", "a9.h0", "--receivers", "logits")
    code, text = run_cli(capsys, list(args))
    assert code == 1 and "Traceback" not in text
    assert re.search(
        r"sender a9\.h0 is not a head of this model: it has layers 0-1 and heads 0-3 per layer",
        text,
    )
    _assert_kept(before, settings)
