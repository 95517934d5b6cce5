"""Every run kind and its config class, listed explicitly.

A run kind exists when it is in ``RUN_KINDS`` (and its job in ``analysis.job_table.JOBS``);
nothing registers itself on import, so a config module that fails to import fails loudly.
Torch-free, like every ``analysis.configs`` module.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from analysis.configs.base import ConfigError, RunConfigBase, format_validation_error
from analysis.configs.catalog import ModelAddConfig, PromptsGenerateConfig, PromptsImportConfig
from analysis.configs.circuits import CircuitConfig
from analysis.configs.explore import ExploreConfig
from analysis.configs.heads import AblateConfig, DlaConfig, HeadsConfig, PatchConfig
from analysis.configs.importance import ImportanceConfig
from analysis.configs.lens import LensConfig
from analysis.configs.path_patch import PathPatchConfig
from analysis.configs.sae import SAECircuitConfig, SAEEvalConfig, SAETrainConfig
from analysis.configs.taxonomy import TaxonomyConfig
from analysis.configs.throughput import ThroughputConfig

RUN_KINDS: dict[str, type[RunConfigBase]] = {
    "heads": HeadsConfig,
    "dla": DlaConfig,
    "patch": PatchConfig,
    "path-patch": PathPatchConfig,
    "ablate": AblateConfig,
    "taxonomy": TaxonomyConfig,
    "importance": ImportanceConfig,
    "lens": LensConfig,
    "explore": ExploreConfig,
    "circuit": CircuitConfig,
    "sae-train": SAETrainConfig,
    "sae-eval": SAEEvalConfig,
    "sae-circuit": SAECircuitConfig,
    "throughput": ThroughputConfig,
    "prompts-import": PromptsImportConfig,
    "prompts-generate": PromptsGenerateConfig,
    "model-add": ModelAddConfig,
}


def run_kinds() -> dict[str, type[RunConfigBase]]:
    """Run kind → config class, in the order the launch form lists them."""
    return dict(RUN_KINDS)


def parse_run_config(data: dict[str, Any]) -> RunConfigBase:
    """Validate a run config dict in full; a ``ConfigError`` names the field and the fix."""
    kind = data.get("kind")
    if kind not in RUN_KINDS:
        known = ", ".join(sorted(RUN_KINDS))
        raise ConfigError(f"kind: unknown run kind {kind!r}; choose one of: {known}")
    try:
        return RUN_KINDS[kind].model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
