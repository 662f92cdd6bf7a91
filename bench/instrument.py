"""Counting what an update costs: commits and round trips to aiosqlite's thread (bench only).

Nothing here is patched at class level, and nothing in the product is changed: the bench
finds the aiosqlite connection(s) the repository holds, whatever the attribute is called,
sets each one's sqlite3 trace callback (through aiosqlite) and wraps that one instance's
`_execute`, the hop every aiosqlite call goes through.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def find_connections(root: object, depth: int = 3) -> list[aiosqlite.Connection]:
    """Return the aiosqlite connections reachable from `root`'s attributes (depth-first)."""
    found: list[aiosqlite.Connection] = []
    seen: set[int] = set()

    def visit(obj: object, level: int) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, aiosqlite.Connection):
            found.append(obj)
            return
        if level >= depth:
            return
        values: list[Any]
        if isinstance(obj, dict):
            values = list(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            values = list(obj)
        else:
            values = list(getattr(obj, "__dict__", {}).values())
            for name in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, name):
                    values.append(getattr(obj, name))
        for value in values:
            if isinstance(value, str | bytes | int | float | bool) or value is None:
                continue
            visit(value, level + 1)

    visit(root, 0)
    return found


@dataclass
class Counts:
    """What was counted so far; subtract two snapshots to get what happened in between."""

    commits: int = 0  # COMMIT/END statements plus writes run outside any transaction
    commit_statements: int = 0
    autocommit_writes: int = 0
    round_trips: int = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.commits - other.commits,
            self.commit_statements - other.commit_statements,
            self.autocommit_writes - other.autocommit_writes,
            self.round_trips - other.round_trips,
        )


@dataclass
class Probe:
    """Counts commits (sqlite3 trace callback) and aiosqlite round trips on connections."""

    connections: list[aiosqlite.Connection] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)

    def snapshot(self) -> Counts:
        """Return a copy of the counts so far."""
        c = self.counts
        return Counts(c.commits, c.commit_statements, c.autocommit_writes, c.round_trips)

    async def attach(self, root: object) -> bool:
        """Instrument every aiosqlite connection under `root`; False if none was found."""
        self.connections = find_connections(root)
        for connection in self.connections:
            await connection.set_trace_callback(self._tracer())
            original = connection._execute

            async def counted(
                fn: Callable[..., Any],
                *args: Any,
                _original: Callable[..., Any] = original,
                **kwargs: Any,
            ) -> Any:
                self.counts.round_trips += 1
                return await _original(fn, *args, **kwargs)

            connection._execute = counted  # type: ignore[method-assign]
        return bool(self.connections)

    async def detach(self) -> None:
        """Remove the wrappers and trace callbacks (connections already closed are skipped)."""
        for connection in self.connections:
            vars(connection).pop("_execute", None)
            with contextlib.suppress(ValueError):  # already closed
                await connection.set_trace_callback(None)  # type: ignore[arg-type]
        self.connections = []

    def _tracer(self) -> Callable[[str], None]:
        """One connection's trace callback: runs on its aiosqlite thread, in statement order."""
        in_transaction = False

        def trace(statement: str) -> None:
            nonlocal in_transaction
            text = statement.lstrip()
            if text.startswith("--"):  # a statement run by a trigger
                return
            word = text[:16].split(None, 1)[0].upper() if text else ""
            if word in ("BEGIN", "SAVEPOINT"):
                in_transaction = True
            elif word in ("COMMIT", "END"):
                in_transaction = False
                self.counts.commits += 1
                self.counts.commit_statements += 1
            elif word == "ROLLBACK" and "TO" not in text.upper().split()[1:3]:
                in_transaction = False
            elif word in _WRITES and not in_transaction:
                self.counts.commits += 1
                self.counts.autocommit_writes += 1
            # A RELEASE of an outermost SAVEPOINT also commits; the product uses BEGIN, so
            # that case is not followed here.

        return trace
