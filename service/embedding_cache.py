"""Embed each distinct text once: a bounded LRU of finished embeddings plus the texts in flight.

``lookup(key, compute)`` gives a future of the key's value at once: done for a cached key, the one
already in flight for the same key, else the future of ``compute()`` (a coroutine runs as its own task;
a future, such as the batcher's, is used as it is, with no task). Failures are not cached. Keys include
the model, so a student and a teacher never share entries. Callers wait through ``asyncio.shield``, so
one that goes away never cancels the computation for the others.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Generic, TypeVar

Value = TypeVar("Value")


class EmbeddingCache(Generic[Value]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._done: OrderedDict[Hashable, Value] = OrderedDict()
        self._in_flight: dict[Hashable, asyncio.Future[Value]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._done)

    def lookup(self, key: Hashable,
               compute: Callable[[], Awaitable[Value]]) -> tuple[asyncio.Future[Value], bool]:
        """(the future of ``key``'s value, whether it came from the cache or joined a computation in
        flight). An exception ``compute()`` raises at once propagates, and nothing is kept."""
        if key in self._done:
            self._done.move_to_end(key)
            self.hits += 1
            future = asyncio.get_running_loop().create_future()
            future.set_result(self._done[key])
            return future, True
        future = self._in_flight.get(key)
        if future is not None:
            self.hits += 1
            return future, True
        future = asyncio.ensure_future(compute())
        self.misses += 1
        self._in_flight[key] = future
        future.add_done_callback(partial(self._finish, key))
        return future, False

    def _finish(self, key: Hashable, future: asyncio.Future[Value]) -> None:
        self._in_flight.pop(key, None)
        if future.cancelled() or future.exception() is not None or self.capacity <= 0:
            return
        self._done[key] = future.result()
        while len(self._done) > self.capacity:
            self._done.popitem(last=False)
