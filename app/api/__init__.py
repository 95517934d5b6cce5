"""The Python API (``import headlab``): ``lab.py`` (the lab), ``run.py`` (a run's results)."""
