"""The explicit tables of run kinds, jobs and zoo recipes agree with each other."""

from __future__ import annotations

import pytest

from analysis.configs import RUN_KINDS, ConfigError, parse_run_config
from analysis.job_table import JOBS, job_for
from analysis.jobs import JobError
from analysis.zoo import zoo_names
from analysis.zoo.train import RECIPES, load_recipe


def test_every_run_kind_is_keyed_by_its_config_kind():
    for kind, cls in RUN_KINDS.items():
        assert cls.model_fields["kind"].default == kind


def test_every_run_kind_has_a_job_and_every_job_a_run_kind():
    assert list(JOBS) == list(RUN_KINDS)
    assert all(callable(job_for(kind)) for kind in RUN_KINDS)


def test_unknown_kinds_name_the_known_ones():
    with pytest.raises(ConfigError, match="unknown run kind 'nope'; choose one of: ablate"):
        parse_run_config({"kind": "nope", "model": "zoo:induction-2l"})
    with pytest.raises(JobError, match="no job is registered for run kind 'nope'"):
        job_for("nope")


def test_every_zoo_model_has_its_recipe():
    assert sorted(RECIPES) == zoo_names()
    assert all(load_recipe(name).name == name for name in zoo_names())
    with pytest.raises(
        ValueError, match="unknown zoo model 'nope'; the zoo has: code-6l, greater-than-3l"
    ):
        load_recipe("nope")
