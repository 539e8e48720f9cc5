"""Who may read or write which graph: the caller of the current call, and the checks the core makes.

The transport authenticates a call and sets its caller (:func:`set_caller`); the core asks :func:`authorize`
before it touches a graph. Without authentication configured there is no caller and everything is allowed.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass

from graphfuse.server.core.errors import PermissionDenied

EVERY_GRAPH = "*"


@dataclass(frozen=True)
class Principal:
    name: str
    read: frozenset[str]
    write: frozenset[str]

    def may(self, graph: str, write: bool) -> bool:
        allowed = self.write if write else self.read | self.write
        return EVERY_GRAPH in allowed or graph in allowed


_caller: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("graphfuse_caller", default=None)


def set_caller(principal: Principal | None) -> None:
    """Make ``principal`` the caller of the current call."""
    _caller.set(principal)


def authorize(graph: str, write: bool = False) -> None:
    """Raise :class:`PermissionDenied` when the current caller may not read (or write) ``graph``."""
    caller = _caller.get()
    if caller is not None and not caller.may(graph, write):
        raise PermissionDenied(
            f"token {caller.name!r} may not {'write' if write else 'read'} graph {graph!r}"
        )


def visible(graphs: Iterable[str]) -> list[str]:
    """The graphs the current caller may read."""
    caller = _caller.get()
    return [g for g in graphs if caller is None or caller.may(g, write=False)]
