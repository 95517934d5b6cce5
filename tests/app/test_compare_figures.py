"""The movers of two head grids (order, ties, ranks) and their bar chart, on grids built here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.figures.compare import mover_bars
from app.services.compare import MOVER_COLUMNS, mover_rows, mover_table
from storage.grids import HeadGrid


def grid(values: list[list[float]]) -> HeadGrid:
    arr = np.asarray(values, dtype=float)
    rows = [
        {"metric": "m", "layer": la, "head": h, "value": arr[la, h]}
        for la in range(arr.shape[0])
        for h in range(arr.shape[1])
    ]
    return HeadGrid(0, "m", pd.DataFrame(rows))


def test_movers_are_the_largest_changes_first_with_ranks_by_size():
    a = grid([[0.125, 0.25], [0.5, -0.375]])
    b = grid([[0.125, 0.75], [0.0, -0.375]])  # +0.5 and -0.5 (exact in binary), two unchanged
    table = mover_table(a, b, top=3)
    assert list(table.columns) == list(MOVER_COLUMNS)
    # ties in |Δ| go in layer, head order
    assert [(r.layer, r.head) for r in table.itertuples()] == [(0, 1), (1, 0), (0, 0)]
    assert table["delta"].tolist() == [0.5, -0.5, 0.0]
    # a rank is 1 + the number of heads of larger |value| in that run
    assert table.iloc[0][["rank_a", "rank_b"]].tolist() == [3, 1]
    assert table.iloc[1][["rank_a", "rank_b"]].tolist() == [1, 4]
    rows = mover_rows(table)
    assert rows[0]["id"] == "0.1" and rows[0]["Δ (B − A)"] == 0.5 and rows[1]["rank in B"] == 4


def test_nan_heads_are_left_out_and_the_chart_draws_the_rest():
    a = grid([[0.1, np.nan], [0.3, 0.4]])
    b = grid([[0.5, 0.2], [0.3, 0.1]])
    table = mover_table(a, b, top=10)
    assert len(table) == 3 and (0, 1) not in {(r.layer, r.head) for r in table.itertuples()}
    fig = mover_bars(table, "m")
    assert list(fig.data[0].y) == ["head 0.0", "head 1.1", "head 1.0"]
    assert fig.data[0].x.tolist() == pytest.approx([0.4, -0.3, 0.0])
    assert fig.data[0].marker.cmid == 0 and fig.data[0].marker.cmax == pytest.approx(0.4)
    with pytest.raises(ValueError, match="no head has 'm' in both runs"):
        mover_bars(table.iloc[0:0], "m")
