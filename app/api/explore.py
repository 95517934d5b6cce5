"""An ``explore`` run from Python (``Lab.explore``): every head's attention on one text.

``Exploration`` is a ``Run`` (tables, ``figure``, ``export_figure``, ``export_bundle``,
``attention``) with the run's stored data as arrays and DataFrames, read by the same service
as the Explore page (``app.services.explore``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from app.api.errors import HeadlabError, api_errors
from app.api.run import Run
from app.services import explore
from app.services.results import ResultsReader
from storage.records import RunRecord

if TYPE_CHECKING:
    from app.api.lab import Lab


class Exploration(Run):
    """Every head's attention, scores and DLA on one text.

    Example::

        ex = lab.explore("The cat sat on the mat. The cat", model="hf:gpt2")
        ex.patterns.shape            # (layer, head, query, key)
        ex.scores.sort_values("induction_score").tail()
        ex.export_figure("heads.pdf", "explore-heads")
    """

    def __init__(self, lab: Lab, record: RunRecord, reused: bool = False) -> None:
        super().__init__(lab, record)
        self.reused = reused  # an identical finished (or pending) run was returned
        self._view: explore.ExploreView | None = None
        self._patterns: np.ndarray | None = None

    def _data(self) -> explore.ExploreView:
        if self._view is None:
            with api_errors():
                self._view = explore.view(ResultsReader(self._lab.store), self.id)
        return self._view

    @property
    def text(self) -> str:
        return self._data().text

    @property
    def tokens(self) -> list[str]:
        """The text's tokens as the model reads them (BOS first where the model adds one)."""
        return list(self._data().tokens)

    @property
    def patterns(self) -> np.ndarray:
        """Every head's pattern, ``[layer, head, query, key]`` (float32 of the stored float16)."""
        if self._patterns is None:
            self._patterns = self._data().patterns
        return self._patterns

    @property
    def scores(self) -> pd.DataFrame:
        """One row per head (``layer``, ``head``) and a column per score on this text."""
        frame = pd.DataFrame(self._data().score_rows())
        parts = frame["head"].str.split(".", expand=True).astype(int)
        return (
            frame.drop(columns="head")
            .assign(layer=parts[0], head=parts[1])
            .set_index(["layer", "head"])
        )

    @property
    def targets(self) -> dict[str, dict]:
        """``top`` (the model's top next token) and, when given, ``next``: ``{id, text}``."""
        return dict(self._data().targets)

    def dla(self, target: str = "top") -> pd.DataFrame:
        """Every head's direct logit attribution to ``target``'s token, ``[layer] × [head]``."""
        metric = f"dla_{target}"
        grid = self._data().scores.get(metric)
        if grid is None:
            raise HeadlabError(f"no DLA for {target!r}: choose one of {', '.join(self.targets)}")
        return pd.DataFrame(grid).rename_axis(index="layer", columns="head")

    @property
    def logit_lens(self) -> pd.DataFrame:
        """Per residual stream read (``resid_pre L`` …, ``final``) and target: the target's
        logit, probability and rank, and the lens' own top tokens."""
        found = self._data()
        names = [f"resid_pre {i}" for i in range(found.n_layers)] + ["final"]
        rows = []
        for role, values in found.logit_lens.items():
            for name, value, top in zip(names, values, found.lens_top, strict=True):
                rows.append({"read": name, "target": role, **value, "lens_top": top})
        return pd.DataFrame(rows)
