"""The job function of every run kind, listed explicitly (the worker's one lookup).

Importing this module imports every job module (and so torch); a job module that fails to
import fails here, loudly, instead of making its run kind vanish. Its keys are exactly the run
kinds of ``analysis.configs.RUN_KINDS`` (tests/analysis/test_registries.py checks it).
"""

from __future__ import annotations

from analysis.catalog_job import model_add_job, prompts_generate_job, prompts_import_job
from analysis.circuits.job import circuit_job
from analysis.explore import explore_job
from analysis.heads_job import ablate_job, dla_job, heads_job, patch_job
from analysis.importance.job import importance_job
from analysis.jobs import JobError, JobFn
from analysis.lens.job import lens_job
from analysis.path_patching.job import path_patch_job
from analysis.sae.job import sae_circuit_job, sae_eval_job, sae_train_job
from analysis.taxonomy.job import taxonomy_job
from analysis.throughput import run_throughput

JOBS: dict[str, JobFn] = {
    "heads": heads_job,
    "dla": dla_job,
    "patch": patch_job,
    "path-patch": path_patch_job,
    "ablate": ablate_job,
    "taxonomy": taxonomy_job,
    "importance": importance_job,
    "lens": lens_job,
    "explore": explore_job,
    "circuit": circuit_job,
    "sae-train": sae_train_job,
    "sae-eval": sae_eval_job,
    "sae-circuit": sae_circuit_job,
    "throughput": run_throughput,
    "prompts-import": prompts_import_job,
    "prompts-generate": prompts_generate_job,
    "model-add": model_add_job,
}


def job_for(kind: str) -> JobFn:
    """The job function of a run kind."""
    if kind not in JOBS:
        raise JobError(f"no job is registered for run kind {kind!r}")
    return JOBS[kind]
