"""Per-position grids of a layer: effects add up over heads, sizes (``MEAN_OVER_HEADS``) average."""

import pandas as pd

from storage.grids import MEAN_OVER_HEADS, split_results


def rows(metric: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"metric": metric, "layer": [0, 0, 0, 0], "head": [0, 1, 0, 1],
         "position": [0, 0, 1, 1], "prompt": None, "value": [2.0, 4.0, 1.0, 3.0]}
    )  # fmt: skip


def test_effects_sum_and_spans_average_over_heads():
    assert "span" in MEAN_OVER_HEADS
    summed = split_results(1, rows("patch_z_pos")).position_grid("patch_z_pos").frame
    averaged = split_results(1, rows("span")).position_grid("span").frame
    assert summed["value"].tolist() == [6.0, 4.0]
    assert averaged["value"].tolist() == [3.0, 2.0]
    one = split_results(1, rows("span")).position_grid("span", (0, 1)).frame
    assert one["value"].tolist() == [4.0, 3.0]
