"""No client-chosen server paths: the web names files only by upload reference; references
resolve only inside the store's uploads (no ``..``, absolute paths or symlinks out) and are
checked against their hash; a refused form writes nothing."""

from __future__ import annotations

import base64
import os

import pytest

from analysis.configs import parse_run_config
from analysis.jobs import JobContext, JobError
from app.services import launch
from storage.errors import InvalidInput
from storage.uploads import MAX_UPLOAD_BYTES

MODEL = "zoo:induction-2l"
TEXT = b"def f(x):\n    return x + 1\n" * 20


def data_url(data: bytes) -> str:
    return "data:text/plain;base64," + base64.b64encode(data).decode()


def test_upload_round_trip_is_content_addressed(store):
    ref = launch.save_upload(store, data_url(TEXT), "corpus.txt")
    assert ref.startswith("upload:") and ref.endswith(".txt")
    assert launch.save_upload(store, data_url(TEXT), "other-name.txt") == ref
    path = store.uploads.resolve(ref)
    assert path.read_bytes() == TEXT
    assert path.is_relative_to(store.uploads.root.resolve())


@pytest.mark.parametrize(
    "ref",
    [
        "upload:../../../etc/passwd",
        "upload:/etc/passwd",
        "/etc/passwd",
        "upload:" + "a" * 63,
        "upload:" + "A" * 64,
        "upload:" + "a" * 64 + "/../x",
    ],
)
def test_malformed_references_are_refused(store, ref):
    with pytest.raises(InvalidInput, match="not an upload reference"):
        store.uploads.resolve(ref)


def test_missing_symlinked_and_corrupt_uploads_are_refused(store, tmp_path):
    missing = "upload:" + "b" * 64 + ".txt"
    with pytest.raises(InvalidInput, match="no such upload"):
        store.uploads.resolve(missing)
    outside = tmp_path / "secret.txt"
    outside.write_bytes(TEXT)
    ref = launch.save_upload(store, data_url(TEXT), "corpus.txt")
    path = store.uploads.resolve(ref)
    path.unlink()
    os.symlink(outside, path)  # same bytes, but the file lives outside the uploads
    with pytest.raises(InvalidInput, match="does not resolve to a file in the uploads"):
        store.uploads.resolve(ref)
    path.unlink()
    path.write_bytes(TEXT[:-1] + b"!")
    with pytest.raises(InvalidInput, match="corrupt"):
        store.uploads.resolve(ref)


def test_upload_limits(store):
    with pytest.raises(InvalidInput, match="empty"):
        launch.save_upload(store, data_url(b""), "empty.txt")
    with pytest.raises(InvalidInput, match="limit is 32 MiB"):
        store.uploads.save(b"x" * (MAX_UPLOAD_BYTES + 1), "big.txt")
    with pytest.raises(InvalidInput, match="not valid base64"):
        launch.save_upload(store, "data:text/plain;base64,@@@", "bad.txt")


SAE_TEXT = {"model": MODEL, "source": "text", "layers": "0"}


@pytest.mark.parametrize(
    ("kind", "form", "field"),
    [
        ("sae-train", {**SAE_TEXT, "text_path": "/etc/passwd"}, "text_path"),
        ("sae-train", {**SAE_TEXT, "text_path": "../../etc/passwd"}, "text_path"),
        ("sae-train", {**SAE_TEXT, "text_path": "upload:../etc/passwd"}, "text_path"),
        ("circuit", {"model": MODEL, "prompt_set": "p", "ground_truth": "/etc/passwd"}, None),
        ("circuit", {"model": MODEL, "prompt_set": "p", "ground_truth": "x/../y.json"}, None),
        ("circuit", {"model": MODEL, "prompt_set": "p", "ground_truth": "passwd"}, None),
        ("sae-eval", {"model": MODEL, "sae_path": "/tmp"}, "sae_path"),
        ("heads", {"model": "hf:/tmp", "prompt_set": "p"}, "model"),
        ("model-add", {"model": "hf:/etc"}, "model"),
    ],
)
def test_web_forms_refuse_server_paths_and_write_nothing(store, kind, form, field):
    before = store.count_runs()
    with pytest.raises(launch.LaunchError) as info:
        launch.enqueue(store, kind, form)
    assert field is None or field in info.value.fields
    field = field or "ground_truth"
    assert "web" in info.value.fields[field] or "upload" in info.value.fields[field]
    assert store.count_runs() == before


def test_web_forms_take_uploads_and_reference_names(store):
    ref = launch.save_upload(store, data_url(TEXT), "corpus.txt")
    assert launch.server_path_errors(store, "sae-train", {**SAE_TEXT, "text_path": ref}) == {}
    for name in ("zoo", "gpt2-small-ioi"):
        form = {"model": MODEL, "prompt_set": "p", "ground_truth": name}
        assert launch.server_path_errors(store, "circuit", form) == {}
    store.add_model("local", "hf:/srv/models/gpt2", {})  # registered by the server's user
    form = {"model": "hf:/srv/models/gpt2", "prompt_set": "p"}
    assert launch.server_path_errors(store, "heads", form) == {}


def test_the_launch_form_offers_an_upload_for_file_fields():
    specs = {s.name: s for s in launch.form_fields("sae-train")}
    assert specs["text_path"].server_file == "text"
    assert {s.name: s.server_file for s in launch.form_fields("circuit")}["ground_truth"] == "json"
    assert {s.name: s.server_file for s in launch.form_fields("sae-eval")}["sae_path"] == "folder"


def test_job_context_resolves_uploads_and_refuses_bad_references(store, tmp_path):
    config = parse_run_config({"kind": "heads", "model": MODEL})
    ctx = JobContext(
        run_id=1, config=config, store=store, workdir=tmp_path, model_loader=lambda c: None
    )
    ref = launch.save_upload(store, data_url(TEXT), "corpus.txt")
    assert ctx.local_file(ref) == str(store.uploads.resolve(ref))
    assert ctx.local_file("/home/me/corpus.txt") == "/home/me/corpus.txt"  # CLI / API
    assert ctx.local_file(None) is None
    with pytest.raises(JobError, match="not an upload reference"):
        ctx.local_file("upload:../../etc/passwd")
