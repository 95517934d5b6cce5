"""Torch-free run configurations (see ``base``); every run kind is listed in ``kinds``."""

from analysis.configs.base import ConfigError, RunConfigBase, unwrap_optional
from analysis.configs.kinds import RUN_KINDS, parse_run_config, run_kinds

__all__ = [
    "RUN_KINDS",
    "ConfigError",
    "RunConfigBase",
    "parse_run_config",
    "run_kinds",
    "unwrap_optional",
]
