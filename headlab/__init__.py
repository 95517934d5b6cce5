"""headlab from Python: ``Lab`` opens a data directory; runs come back as ``Run`` handles whose
tables are pandas DataFrames and whose figures are plotly Figures.

Example::

    import headlab

    lab = headlab.Lab(home="headlab-data")
    pairs = lab.generate_prompts("induction-contrast", "zoo:induction-2l", n=16, name="ind16")
    heads = lab.run("heads", "zoo:induction-2l", "ind16")
    heads.head_grid("induction_score")
"""

from app.api.errors import HeadlabError, RunFailed
from app.api.lab import Lab
from app.api.run import FIGURE_KINDS, AttentionPattern, Run

__all__ = ["FIGURE_KINDS", "AttentionPattern", "HeadlabError", "Lab", "Run", "RunFailed"]
