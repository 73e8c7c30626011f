"""Embed each distinct text once: a bounded LRU of finished embeddings plus the texts in flight.

``get_or_compute(key, compute)`` returns the cached vector, joins the computation already running for
the same key, or starts ``compute()``; failures are not cached. Keys include the model, so a student
and a teacher never share entries.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class EmbeddingCache(Generic[Value]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._done: OrderedDict[Hashable, Value] = OrderedDict()
        self._in_flight: dict[Hashable, asyncio.Future] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._done)

    async def get_or_compute(self, key: Hashable,
                             compute: Callable[[], Awaitable[Value]]) -> tuple[Value, bool]:
        """(value, whether it came from the cache or joined a computation already in flight).

        The computation runs as its own task, so a caller that goes away does not cancel it for others.
        """
        if key in self._done:
            self._done.move_to_end(key)
            self.hits += 1
            return self._done[key], True
        task = self._in_flight.get(key)
        joined = task is not None
        if joined:
            self.hits += 1
        else:
            self.misses += 1
            task = asyncio.ensure_future(compute())
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._finish(key, done))
        return await asyncio.shield(task), joined

    def _finish(self, key: Hashable, task: asyncio.Future) -> None:
        self._in_flight.pop(key, None)
        if task.cancelled() or task.exception() is not None or self.capacity <= 0:
            return
        self._done[key] = task.result()
        while len(self._done) > self.capacity:
            self._done.popitem(last=False)
