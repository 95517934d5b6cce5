"""Pure figure builders shared by the web pages and paper export.

Every builder takes plain data (pandas DataFrames, numpy arrays, dicts in the formats fixed by
the project's data conventions) and returns a ``plotly.graph_objects.Figure``. No Dash, no torch,
no storage access: the same figure is shown on a page and written to SVG/PDF/PNG by
``app.export``.
"""
