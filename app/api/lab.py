"""``headlab.Lab``: the workbench from Python, over the same store and job machinery as the CLI.

A lab is a data directory (``HEADLAB_HOME``) and its database. Everything goes through the
functions the CLI and the web app use: ``app.catalog`` for models and prompt sets,
``app.launching`` for runs (validated configs, queued rows, the worker's own job code when run
inline), ``app.export`` for tables and figures. Runs started here show up in ``headlab runs
list`` and the web UI, and queued ones are picked up by ``headlab worker``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from tqdm.auto import tqdm

from analysis.configs import run_kinds
from app import catalog, launching
from app.api.errors import HeadlabError, api_errors
from app.api.explore import Exploration
from app.api.overlap import CircuitOverlapResult
from app.api.run import Run
from app.figures import compare as compare_figures
from storage import migrate
from storage.errors import NotFound
from storage.records import ModelRecord, PromptSetRecord, RunRecord
from storage.settings import load_settings
from storage.store import ResultStore


class Lab:
    """A headlab data directory: models, prompt sets and runs.

    ``home`` defaults to ``$HEADLAB_HOME`` (else ``./headlab-data``); ``db`` to
    ``$HEADLAB_DB`` (else SQLite in ``home``). A new database is created; an out-of-date
    one is upgraded only with ``upgrade=True`` (or ``headlab db upgrade``).

    Example::

        lab = headlab.Lab(home="headlab-data")
        lab.models()
    """

    def __init__(
        self, home: str | Path | None = None, *, db: str | None = None, upgrade: bool = False
    ) -> None:
        env = dict(os.environ)
        if home is not None:
            env["HEADLAB_HOME"] = str(home)
            env.pop("HEADLAB_DB", None)
        if db is not None:
            env["HEADLAB_DB"] = db
        self.settings = load_settings(env)
        with api_errors():
            self.settings.home.mkdir(parents=True, exist_ok=True)
            if upgrade or migrate.current_revision(self.settings.db_url) is None:
                migrate.upgrade(self.settings.db_url)
            self.store = ResultStore.from_settings(self.settings)
            self.store.check_schema()
        self._runner: Any = None

    def __repr__(self) -> str:
        return f"<Lab {self.settings.home}>"

    def close(self) -> None:
        self.store.close()

    # -- models and prompt sets -----------------------------------------------------------

    def models(self) -> pd.DataFrame:
        """Registered models and the built-in zoo, one row each with architecture facts.

        Example: ``lab.models()[["name", "spec", "n_layers", "n_heads"]]``
        """
        with api_errors():
            rows = catalog.model_rows(self.store)
        flat = [
            {k: v for k, v in row.items() if k != "facts"}
            | {k: row["facts"].get(k) for k in catalog.FACT_COLUMNS}
            for row in rows
        ]
        return pd.DataFrame(flat)

    def add_model(
        self, spec: str, name: str | None = None, *, replace: bool = False, device: str = "cpu"
    ) -> ModelRecord:
        """Load a model to check it and register it (``zoo:<name>`` or ``hf:<id or folder>``).

        Example: ``lab.add_model("hf:/models/my-gpt2", name="my-gpt2")``
        """
        with api_errors():
            return catalog.add_model(self.store, spec, name, replace=replace, device=device)

    def prompt_sets(self) -> pd.DataFrame:
        """Stored prompt sets: id, name, source, model, number of pairs, created."""
        with api_errors():
            sets = self.store.list_prompt_sets()
        return pd.DataFrame(
            [
                {
                    "id": s.id,
                    "name": s.name,
                    "source": s.source,
                    "model": s.model_spec,
                    "n_pairs": s.n_pairs,
                    "created_at": s.created_at,
                }
                for s in sets
            ],
            columns=["id", "name", "source", "model", "n_pairs", "created_at"],
        )

    def pairs(self, prompt_set: str | int) -> pd.DataFrame:
        """The pairs of a prompt set: index, clean, corrupted, correct, incorrect, meta.

        Example: ``lab.pairs("ind32").head()``
        """
        with api_errors():
            record = self.store.get_prompt_set(prompt_set)
            pairs = self.store.get_pairs(record.id)
        return pd.DataFrame([dataclasses.asdict(p) for p in pairs])

    def generate_prompts(
        self,
        task: str,
        model: str,
        n: int = 20,
        *,
        seed: int = 0,
        name: str | None = None,
        exist_ok: bool = False,
        **needle: Any,
    ) -> PromptSetRecord:
        """Generate a seeded task prompt set valid for the model's tokenizer and store it.
        With ``exist_ok`` a stored set of that name is returned as it is (notebook re-runs).
        The needle task takes ``needle_length``, ``query``, ``contexts`` and ``depths``.

        Example: ``lab.generate_prompts("induction-contrast", "zoo:induction-2l", n=16)``;
        ``lab.generate_prompts("needle", "zoo:induction-2l", n=40, contexts=(24, 56))``
        """
        with api_errors():
            if exist_ok and name is not None:
                try:
                    return self.store.get_prompt_set(name)
                except NotFound:
                    pass
            return catalog.generate_prompt_set(
                self.store, task, model, n, seed, name, needle or None
            )

    def import_prompts(
        self, path: str | Path, name: str, model: str, *, fmt: str | None = None
    ) -> PromptSetRecord:
        """Import pairs from a CSV/JSONL file (columns clean, corrupted, correct, incorrect).

        Example: ``lab.import_prompts("pairs.csv", "mine", "zoo:induction-2l")``
        """
        with api_errors():
            return catalog.import_prompt_set(self.store, path, name, model, fmt)

    # -- runs ---------------------------------------------------------------------------

    @staticmethod
    def run_kinds() -> list[str]:
        """The analyses ``run`` launches: heads, dla, patch, circuit, sae-train, …"""
        return launching.analysis_kinds()

    @staticmethod
    def run_options(kind: str) -> pd.DataFrame:
        """The options of a run kind: name, type, default, description.

        Example: ``headlab.Lab.run_options("circuit")``
        """
        kinds = run_kinds()
        if kind not in kinds:
            raise HeadlabError(f"unknown run kind {kind!r}; choose one of: {', '.join(kinds)}")
        rows = [
            {
                "name": name,
                "type": str(info.annotation).replace("typing.", ""),
                "required": info.is_required(),
                "default": None if info.is_required() else info.default,
                "description": info.description or "",
            }
            for name, info in kinds[kind].model_fields.items()
            if name != "kind"
        ]
        return pd.DataFrame(rows)

    def run(
        self,
        kind: str,
        model: str,
        prompts: str | None = None,
        *,
        wait: bool = True,
        progress: bool = True,
        **options: Any,
    ) -> Run:
        """Launch an analysis with the same validated config as ``headlab run KIND``.

        With ``wait`` (the default) it runs in this process with a progress bar and raises
        :class:`RunFailed` if it fails; otherwise it is queued for ``headlab worker``.

        Example: ``lab.run("circuit", "zoo:induction-2l", "ind32", method="eap-ig")``
        """
        with api_errors():
            config = launching.make_config(kind, model, prompts, options)
            queued = launching.enqueue_config(self.store, config)
        if not wait:
            return Run(self, queued)
        if self._runner is None:
            from analysis.worker import Worker

            self._runner = Worker(self.store)
        final = launching.execute_inline(
            self.store, queued, lambda store, run_id: self._poll(run_id, progress), self._runner
        )
        return Run(self, final).checked()

    def explore(
        self,
        text: str | None,
        model: str,
        *,
        next_token: str | None = None,
        wait: bool = True,
        progress: bool = False,
        **options: Any,
    ) -> Exploration:
        """Every head's attention on ``text`` (one forward, as the Explore page): patterns,
        per-head scores on the text, each head's DLA for the top next token and ``next_token``,
        the logit lens. The same model, text and options reuse the finished run. ``text=None``
        with ``prompt_set=NAME, prompt_index=I`` explores a stored prompt's clean text.

        Example: ``lab.explore("The cat sat on the mat. The cat", model="hf:gpt2").scores``
        """
        from app.services import explore as explore_service

        with api_errors():
            try:
                config = explore_service.make_config(model, text, next_token=next_token,
                                                     **options)  # fmt: skip
                record, reused = explore_service.submit(self.store, config)
            except explore_service.ExploreError as exc:
                raise HeadlabError(str(exc)) from None
        if not wait:
            return Exploration(self, record, reused)
        if record.status.is_terminal:
            done = Exploration(self, record, reused)
            done.checked()
            return done
        if self._runner is None:
            from analysis.worker import Worker

            self._runner = Worker(self.store)
        final = launching.execute_inline(
            self.store, record, lambda store, run_id: self._poll(run_id, progress), self._runner
        )
        done = Exploration(self, final, reused)
        done.checked()
        return done

    def watch(self, run_id: int, progress: bool = True) -> RunRecord:
        """Wait for a run to end, with a progress bar; returns its final record."""
        with api_errors():
            return self._poll(run_id, progress)

    def _poll(self, run_id: int, progress: bool) -> RunRecord:
        with tqdm(total=100, desc=f"run {run_id}", disable=not progress, leave=False) as bar:

            def update(run: RunRecord) -> None:
                bar.n = round(run.progress * 100)
                bar.set_postfix_str(run.message or run.status.value, refresh=True)

            return launching.poll_until_done(self.store, run_id, update)

    def get_run(self, run_id: int) -> Run:
        """The stored run ``run_id``."""
        with api_errors():
            return Run(self, self.store.get_run(run_id))

    def runs(
        self, kind: str | None = None, status: str | None = None, limit: int = 50
    ) -> pd.DataFrame:
        """Runs, newest first: id, kind, status, model, prompt set, progress, created, error."""
        with api_errors():
            records = self.store.list_runs(
                kind=kind, status=status.upper() if status else None, limit=limit
            )
        columns = ["id", "kind", "status", "model", "prompt_set_id", "progress", "created_at"]
        return pd.DataFrame(
            [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "status": r.status.value,
                    "model": r.model_spec,
                    "prompt_set_id": r.prompt_set_id,
                    "progress": r.progress,
                    "created_at": r.created_at,
                    "error": r.error,
                }
                for r in records
            ],
            columns=[*columns, "error"],
        )

    # -- comparing ------------------------------------------------------------------------

    def compare(self, a: int, b: int, metric: str) -> pd.DataFrame:
        """One metric of two runs per head: layer, head, a, b, difference (b − a).

        Example: ``lab.compare(3, 8, "patch_z").nlargest(5, "difference")``
        """
        self._check_pair(a, b)
        left = self.get_run(a).heads(metric).dropna(subset=["head"])
        right = self.get_run(b).heads(metric).dropna(subset=["head"])
        merged = left[["layer", "head", "value"]].merge(
            right[["layer", "head", "value"]], on=["layer", "head"], suffixes=("_a", "_b")
        )
        if merged.empty:
            raise HeadlabError(f"runs {a} and {b} share no heads in {metric!r}")
        merged = merged.rename(columns={"value_a": "a", "value_b": "b"})
        return merged.assign(difference=merged["b"] - merged["a"])

    def movers(self, a: int, b: int, metric: str, top: int = 10) -> pd.DataFrame:
        """The ``top`` heads whose ``metric`` moved most from run ``a`` to run ``b``: layer,
        head, a, b, delta (b − a), rank_a, rank_b (1 = largest |value| in that run), largest
        |delta| first. The runs are of one kind, on one model or on two models of the same
        layer × head shape (two checkpoints of one training run, a base and a fine-tune).

        Example: ``lab.movers(early.id, late.id, "induction_score", top=4)``
        """
        from app.services.compare import CompareError
        from app.services.compare import movers as find_movers
        from app.services.results import ResultsReader

        with api_errors():
            try:
                return find_movers(ResultsReader(self.store), a, b, metric, top)
            except CompareError as exc:
                raise HeadlabError(str(exc)) from None

    def _check_pair(self, a: int, b: int) -> None:
        """HeadlabError when runs ``a`` and ``b`` differ in kind or model shape."""
        from app.services.compare import run_pair
        from app.services.results import ResultsReader

        with api_errors():
            problem = run_pair(ResultsReader(self.store), a, b).problem()
        if problem:
            raise HeadlabError(problem)

    def compare_figure(self, a: int, b: int, metric: str, *, difference: bool = False) -> go.Figure:
        """The Compare page's figure: both grids side by side, or their difference."""
        self._check_pair(a, b)
        left = self.get_run(a).heads(metric).dropna(subset=["head"])
        right = self.get_run(b).heads(metric).dropna(subset=["head"])
        if difference:
            return compare_figures.difference_heatmap(left, right, metric)
        return compare_figures.side_by_side(left, right, metric, titles=(f"run {a}", f"run {b}"))

    def circuit_overlap(self, runs: list[int]) -> CircuitOverlapResult:
        """The overlap of 2+ finished circuit runs of one model (e.g. one per task): Jaccard
        and overlap coefficient per pair of heads and of all nodes, heads shared and
        task-specific, shared edges, each circuit against its task's ground truth.

        Example: ``lab.circuit_overlap([4, 5, 6]).pairs``
        """
        from app.services.overlap import OverlapError, circuit_overlap

        with api_errors():
            try:
                return CircuitOverlapResult(self.store, circuit_overlap(self.store, list(runs)))
            except OverlapError as exc:
                raise HeadlabError(str(exc)) from None
