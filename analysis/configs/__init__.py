"""Torch-free run configurations (see ``base``)."""

from analysis.configs.base import (
    ConfigError,
    RunConfigBase,
    parse_run_config,
    register_config,
    run_kinds,
    unwrap_optional,
)

__all__ = [
    "ConfigError",
    "RunConfigBase",
    "parse_run_config",
    "register_config",
    "run_kinds",
    "unwrap_optional",
]
