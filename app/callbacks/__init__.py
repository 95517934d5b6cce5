"""Thin callbacks: parse the inputs, make one store/service call, build with one pure builder.

Each module has ``register(app, ctx)`` which attaches its callbacks to one Dash app instance
(never to Dash's global callback list), so several apps can live in one process.
"""

CALLBACK_MODULES: tuple[str, ...] = (
    "app.callbacks.router",
    "app.callbacks.export",
    "app.callbacks.runs",
    "app.callbacks.launch",
    "app.callbacks.catalog",
    "app.callbacks.heads",
    "app.callbacks.circuits",
    "app.callbacks.sae",
    "app.callbacks.compare",
)
