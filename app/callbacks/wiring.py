"""Callbacks as plain module-level functions, wired to a Dash app in one place.

``@callback(Output…, Input…, State…)`` turns a function ``fn(ctx, *values)`` into a
``Callback``: still callable as that plain function (unit tests call it with a ``WebContext``
and the values Dash would pass), plus the wiring that ``Callback.attach`` gives one Dash app
instance (never Dash's global callback list, so several apps can live in one process). A
callback that must know what fired it says ``fired=True`` and takes a ``Fired`` second, read
from ``dash.ctx`` by the wiring, so the function itself never touches Dash's request context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dash
from dash.dependencies import DashDependency

from app.services.context import WebContext


@dataclass(frozen=True)
class Fired:
    """What fired a callback, as ``dash.ctx`` tells it."""

    id: Any = None  # the triggering component's id (a dict for pattern-matching ids)
    clicked: bool = False  # a triggering property has a value (a click, not a re-render)
    state_ids: tuple[Any, ...] = ()  # per State: its id, or the ids an ALL pattern matched
    output_ids: tuple[Any, ...] = ()  # per Output: likewise

    @classmethod
    def from_dash(cls) -> Fired:
        def matched(items: list[Any] | dict[str, Any]) -> tuple[Any, ...]:
            # Dash gives a lone Output (or State) as a dict, several as a list of them
            listed = [items] if isinstance(items, dict) else items
            return tuple(
                [one["id"] for one in item] if isinstance(item, list) else item["id"]
                for item in listed
            )

        context = dash.ctx
        return cls(
            id=context.triggered_id,
            clicked=any(t.get("value") for t in context.triggered or []),
            state_ids=matched(context.states_list or []),
            output_ids=matched(context.outputs_list or []),
        )


@dataclass(frozen=True)
class Callback:
    """A server callback: the plain function and its Dash wiring."""

    fn: Callable[..., Any]
    dependencies: tuple[DashDependency, ...]
    prevent_initial_call: bool
    fired: bool

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def attach(self, app: dash.Dash, ctx: WebContext) -> None:
        fn, fired = self.fn, self.fired

        def bound(*values: Any) -> Any:
            if fired:
                return fn(ctx, Fired.from_dash(), *values)
            return fn(ctx, *values)

        bound.__name__ = bound.__qualname__ = fn.__name__
        app.callback(*self.dependencies, prevent_initial_call=self.prevent_initial_call)(bound)


@dataclass(frozen=True)
class ClientsideCallback:
    """A callback that runs in the browser (JavaScript source) and its wiring."""

    source: str
    dependencies: tuple[DashDependency, ...]
    prevent_initial_call: bool = False

    def attach(self, app: dash.Dash, ctx: WebContext) -> None:
        app.clientside_callback(
            self.source, *self.dependencies, prevent_initial_call=self.prevent_initial_call
        )


def callback(
    *dependencies: DashDependency, prevent_initial_call: bool = False, fired: bool = False
) -> Callable[[Callable[..., Any]], Callback]:
    """Declare ``fn(ctx, [fired,] *values)`` a callback on these Outputs, Inputs and States."""

    def declare(fn: Callable[..., Any]) -> Callback:
        return Callback(fn, dependencies, prevent_initial_call, fired)

    return declare
