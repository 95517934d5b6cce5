"""``headlab demo prepare``: the demo that ``make run`` shows on first start.

Registers the zoo models (training any that are missing), generates the demo prompt sets, and runs
the standard analyses on them inline, so the first screen already shows heads, patching effects,
circuits and SAE features. Idempotent: a demo run whose exact config already FINISHED is skipped.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from analysis.configs import parse_run_config, run_kinds
from app.cli.context import open_store, store_errors
from app.cli.output import CliError, emit_json
from app.cli.run import enqueue, execute_inline
from storage import migrate
from storage.errors import NotFound
from storage.records import RunStatus
from storage.settings import load_settings
from storage.store import ResultStore

app = typer.Typer(help="The built-in demo: zoo models, prompt sets and finished runs.")

INDUCTION = "zoo:induction-2l"
GREATER_THAN = "zoo:greater-than-3l"
CODE = "zoo:code-6l"
INDUCTION_EARLY = "zoo:induction-2l-early"  # step 150 of induction-2l's training run

# (prompt-set name, model spec, generator task, pairs). "induction-contrast" changes every
# corrupted token, the contrast the induction model's ground truth is scored under, so the demo
# circuits' ROC means something ("induction" corrupts one token, which leaves the
# previous-token -> induction-key path unchanged).
DEMO_PROMPT_SETS = (
    ("demo-induction", INDUCTION, "induction-contrast", 16),
    ("demo-greater-than", GREATER_THAN, "greater-than", 16),
    ("demo-code", CODE, "attribute-recall", 8),
    ("demo-code-brackets", CODE, "bracket-match", 8),
    ("demo-needles", INDUCTION, "needle", 40),
)

# (kind, config fields beyond kind/prompt_set — a "model" field overrides the set's model —,
# prompt-set name). The real-text model's runs come last so that they are the newest: the first
# screen shows its heads.
DEMO_RUNS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("heads", {}, "demo-greater-than"),
    ("patch", {}, "demo-greater-than"),
    ("circuit", {"method": "eap-ig"}, "demo-greater-than"),
    ("sae-train", {}, "demo-induction"),
    ("circuit", {"method": "eap"}, "demo-induction"),
    ("circuit", {"method": "eap-ig"}, "demo-induction"),
    ("circuit", {"method": "acdc"}, "demo-induction"),
    ("ablate", {}, "demo-induction"),
    ("dla", {}, "demo-induction"),
    ("patch", {"positions": "both"}, "demo-induction"),
    ("heads", {"repeated_sequences": 32, "repeat_length": 12}, "demo-induction"),
    # the same analysis on the early checkpoint: the Compare page opens on this pair
    (
        "heads",
        {"model": INDUCTION_EARLY, "repeated_sequences": 32, "repeat_length": 12},
        "demo-induction",
    ),
    ("importance", {}, "demo-induction"),
    ("path-patch", {"receivers": ["a1.h0", "a1.h1", "a1.h2", "a1.h3", "logits"]}, "demo-induction"),
    ("lens", {}, "demo-induction"),
    ("taxonomy", {}, "demo-needles"),
    # two tasks of the real-text model: the circuit overlap page compares them
    ("circuit", {"method": "eap-ig"}, "demo-code-brackets"),
    ("circuit", {"method": "eap-ig"}, "demo-code"),
    ("patch", {}, "demo-code"),
    ("heads", {"repeated_sequences": 16, "repeat_length": 40}, "demo-code"),
)


def ensure_prompt_sets(store: ResultStore) -> list[str]:
    """Generate the demo prompt sets that are missing; returns the names created."""
    from analysis.models import load_model
    from analysis.prompts.generators import generate_pairs

    created = []
    for name, spec, task, n in DEMO_PROMPT_SETS:
        try:
            store.get_prompt_set(name)
            continue
        except NotFound:
            pass
        pairs = generate_pairs(load_model(spec), task, n, seed=0)
        meta = {"task": task, "seed": 0}
        store.add_prompt_set(name, pairs, f"generate:{task}", spec, meta)
        created.append(name)
    return created


def demo_configs() -> list[dict[str, Any]]:
    kinds = run_kinds()
    configs = []
    for kind, fields, prompt_set in DEMO_RUNS:
        if kind not in kinds:
            continue
        spec = next(s for n, s, _, _ in DEMO_PROMPT_SETS if n == prompt_set)
        data = {"kind": kind, "model": spec, "prompt_set": prompt_set, **fields}
        configs.append(parse_run_config(data).model_dump(mode="json"))
    return configs


def already_finished(store: ResultStore, config: dict[str, Any]) -> bool:
    runs = store.list_runs(kind=config["kind"], status=RunStatus.FINISHED, limit=10_000)
    return any(run.config == config for run in runs)


@app.command()
def prepare(json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Register the zoo, generate demo prompt sets and run the demo analyses (idempotent)."""
    from analysis.worker import Worker
    from analysis.zoo.demo import ensure_built, register_zoo

    settings = load_settings()
    console = Console(stderr=True, quiet=json_out)
    with store_errors():
        migrate.upgrade(settings.db_url)
        store = open_store(settings)
        trained = ensure_built()
        models = [r.name for r in register_zoo(store)]
        prompt_sets = ensure_prompt_sets(store)
        finished: list[int] = []
        failed: list[int] = []
        runner = Worker(store)
        for config in demo_configs():
            if already_finished(store, config):
                continue
            console.print(f"demo: {config['kind']} on {config['prompt_set']}")
            queued = enqueue(store, parse_run_config(config))
            run = execute_inline(store, queued, not json_out, runner)
            (finished if run.status is RunStatus.FINISHED else failed).append(run.id)
    result = {
        "trained": trained,
        "models": models,
        "prompt_sets_created": prompt_sets,
        "runs_finished": finished,
        "runs_failed": failed,
    }
    if json_out:
        emit_json(result)
    else:
        console.print(f"demo ready: {len(finished)} new runs, models {', '.join(models)}")
    if failed:
        raise CliError(f"demo runs failed: {failed}; see `headlab runs show RUN`")
