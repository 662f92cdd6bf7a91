"""The one SQLite connection, and each read or write transaction as one hop to its thread.

aiosqlite runs every call on its own thread, one round trip each: a transaction written as
BEGIN, a few statements and COMMIT costs five or six of them, and holding a lock across them
is what kept every other chat waiting. Here a transaction is a plain function of a
`sqlite3.Connection`, run whole on that thread (`write`): one hop, and nothing can interleave
with it, since the thread runs one call at a time.

An update's own bookkeeping rides along. While the poller processes an update it opens an
`UpdateWrites` for it (`for_update`): the activity record and the "processed" marker wait
there and are written inside the first transaction the update's handler makes, so an update
that changes anything is one commit (one fsync at synchronous=FULL); one whose handler writes
nothing gets its bookkeeping written alone, by `finish_update`, still one commit.
"""

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

import aiosqlite

T = TypeVar("T")
Step = Callable[[sqlite3.Connection], None]


@dataclass
class UpdateWrites:
    """What one update must also write, in the same commit as its handler's changes."""

    update_id: int
    pending: list[Step] = field(default_factory=list)

    def add(self, step: Step) -> None:
        """Have `step` run inside the update's next transaction (before it commits)."""
        self.pending.append(step)

    def take(self) -> list[Step]:
        """Return what is pending, for a transaction to carry."""
        return list(self.pending)

    def carried(self, steps: list[Step]) -> None:
        """Forget the steps a transaction has just committed (others may have come since)."""
        self.pending = [step for step in self.pending if step not in steps]


@dataclass
class Counts:
    """How often the database was used: what the tests and the benchmark count."""

    round_trips: int = 0
    commits: int = 0


_current: ContextVar[UpdateWrites | None] = ContextVar("update_writes", default=None)


async def on_thread(connection: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run `work(sqlite3 connection)` on aiosqlite's thread: one round trip."""
    # aiosqlite has no public call for "run this function on your thread"; `_execute` is
    # that call (every public method goes through it), pinned by the version bound.
    result: T = await connection._execute(work, connection._conn)  # type: ignore[no-untyped-call]
    return result


def mark_processed(update_id: int, answered: Sequence[int], prune_below: int | None) -> Step:
    """The marker that an update was applied (checked only for updates delivered again).

    It also notes the earlier updates whose answers have gone out since, and forgets the
    markers below the offset Telegram was last told: it never delivers those again.
    """

    def step(db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT OR IGNORE INTO processed_updates (update_id, answered) VALUES (?, 0)",
            (update_id,),
        )
        db.executemany(
            "UPDATE processed_updates SET answered = 1 WHERE update_id = ?",
            [(done,) for done in answered],
        )
        if prune_below is not None:
            db.execute("DELETE FROM processed_updates WHERE update_id < ?", (prune_below,))

    return step


class Database:
    """One connection per process; every transaction in one hop, so none interleave."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self.counts = Counts()

    @property
    def connection(self) -> aiosqlite.Connection:
        """The aiosqlite connection (for backups and the benchmark's instrumentation)."""
        return self._connection

    async def _hop(self, work: Callable[[sqlite3.Connection], T]) -> T:
        self.counts.round_trips += 1
        return await on_thread(self._connection, work)

    async def read(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only function of the connection, in one hop."""
        return await self._hop(body)

    async def write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` as one transaction (with the current update's bookkeeping), in one hop."""
        writes = _current.get()
        extra = writes.take() if writes is not None else []

        def transaction(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                # The update's bookkeeping first, as if written before its handler ran.
                for step in extra:
                    step(db)
                result = body(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return result

        result = await self._hop(transaction)
        self.counts.commits += 1
        if writes is not None:
            writes.carried(extra)
        return result

    @contextmanager
    def for_update(
        self, update_id: int, *, answered: Sequence[int] = (), prune_below: int | None = None
    ) -> Iterator[UpdateWrites]:
        """Collect what processing `update_id` must write with its handler's transaction."""
        writes = UpdateWrites(update_id, [mark_processed(update_id, answered, prune_below)])
        token = _current.set(writes)
        try:
            yield writes
        finally:
            _current.reset(token)

    async def finish_update(self, writes: UpdateWrites) -> None:
        """Commit the update's bookkeeping if no transaction of its handler carried it."""
        if not writes.pending:
            return
        token = _current.set(writes)
        try:
            await self.write(lambda db: None)
        finally:
            _current.reset(token)

    @staticmethod
    def current_update() -> UpdateWrites | None:
        """Return the bookkeeping of the update being processed, if any."""
        return _current.get()

    async def close(self) -> None:
        """Close the connection."""
        await self._connection.close()
