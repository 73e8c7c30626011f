"""A dynamic batcher that knows nothing about models.

Items are queued with their token counts. A batch closes when it holds ``max_batch_size`` items, when
adding the next item would pass ``max_batch_tokens``, or when its wait is over. It waits for company,
``max_wait_s`` from the moment it takes its first item, only when no other worker is free and load is
evident: another batch is running (the callers it answers, and others, send while it runs), or items
were already waiting when this worker became free. Otherwise it takes what is queued and runs at once,
so a lone request never waits for company, with one worker or several, and concurrent requests spread
over idle workers (docs/benchmarks.md, "Batch wait", says why the wait counts from the first item taken).
It is sorted by token count (longest first, to limit padding inside the runner's own sub-batches) and
handed to ``run_batch`` in a worker thread, off the event loop. Up to ``workers`` batches run at once,
each in its own thread (``run_batch`` must then be thread-safe); a batch starts collecting only when a
worker is free, so items keep arriving into it while the others run. ``submit`` (and ``enqueue``, which
gives the result's future instead of waiting for it) fails fast with :class:`QueueFull` when
``max_queue`` items are waiting, and :meth:`DynamicBatcher.stop` finishes everything already accepted
before it returns. Batchers given one ``slots`` semaphore share its batch slots: at most that many of
their batches run at once (several domains on the same cores); each takes a slot only once an item of
its own is waiting, so an idle batcher holds none.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

WARM_UP_BARRIER_TIMEOUT_S = 600.0  # every worker thread starts its copy of a warm-up batch well within this

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int = 32
    max_batch_tokens: int = 4096
    max_wait_s: float = 0.02
    max_queue: int = 1024
    workers: int = 1


class QueueFull(RuntimeError):
    """The batcher holds ``max_queue`` waiting items; the caller should retry later."""


class BatcherStopped(RuntimeError):
    """The batcher no longer accepts work (it is draining or stopped)."""


@dataclass
class BatchStats:
    """What one batch looked like, for metrics: size, tokens, seconds each item waited, run seconds."""

    size: int
    tokens: int
    queue_waits: list[float]
    run_seconds: float


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    tokens: int
    enqueued: float
    future: asyncio.Future


class DynamicBatcher(Generic[Item, Result]):
    """Batches ``submit``-ted items for ``run_batch(items) -> results`` (same order, same length)."""

    def __init__(self, run_batch: Callable[[Sequence[Item]], Sequence[Result]], policy: BatchPolicy,
                 on_batch: Callable[[BatchStats], None] | None = None, name: str = "batcher",
                 slots: asyncio.Semaphore | None = None) -> None:
        self._run_batch = run_batch
        self._slots = slots
        self.policy = policy
        self._on_batch = on_batch
        self._waiting: deque[_Pending] = deque()
        self._arrival: asyncio.Future[None] | None = None  # what the collecting worker waits on
        self._executor = ThreadPoolExecutor(max_workers=policy.workers, thread_name_prefix=name)
        self._task: asyncio.Task | None = None
        self._accepting = False
        self._carry: _Pending | None = None
        self._batches_open = 0  # collecting or running
        self._running: set[asyncio.Task] = set()  # references to batch tasks, so none is collected

    @property
    def depth(self) -> int:
        """Items waiting to be batched."""
        return len(self._waiting) + (self._carry is not None)

    async def warm_up(self, batches: Sequence[Sequence[Item]]) -> None:
        """Run each batch once in every worker thread at the same time, straight to the runner (before
        ``start``), so each thread's allocations reach their working size before real work. The runs meet
        at a barrier first: a thread cannot take a second copy while another thread has none."""
        loop = asyncio.get_running_loop()
        for batch in batches:
            barrier = threading.Barrier(self.policy.workers, timeout=WARM_UP_BARRIER_TIMEOUT_S)
            await asyncio.gather(*(loop.run_in_executor(self._executor, self._run_after, barrier, list(batch))
                                   for _ in range(self.policy.workers)))

    def _run_after(self, barrier: threading.Barrier, batch: list[Item]) -> Sequence[Result]:
        barrier.wait()
        return self._run_batch(batch)

    def start(self) -> None:
        self._accepting = True
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def enqueue(self, item: Item, tokens: int) -> asyncio.Future[Result]:
        """Queue ``item``; the future of its result (no task is made). Raises QueueFull or BatcherStopped
        at once; a cancelled future is left out of its batch."""
        if not self._accepting:
            raise BatcherStopped("the batcher is not accepting work")
        if self.depth >= self.policy.max_queue:
            raise QueueFull(f"{self.depth} items waiting (limit {self.policy.max_queue})")
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(_Pending(item, tokens, time.perf_counter(), future))
        if self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)
        return future

    async def submit(self, item: Item, tokens: int) -> Result:
        """Queue ``item`` and wait for its result; raises QueueFull or BatcherStopped at once."""
        return await self.enqueue(item, tokens)

    async def _first(self) -> _Pending:
        if self._carry is not None:
            pending, self._carry = self._carry, None
            return pending
        return await self._next()

    async def _next(self) -> _Pending:
        """The first waiting item, once there is one (a deque and one future: lighter than asyncio.Queue,
        whose put and get cost several calls each, for the one consumer here)."""
        while not self._waiting:
            self._arrival = asyncio.get_running_loop().create_future()
            await self._arrival
        return self._waiting.popleft()

    async def _something_waiting(self) -> None:
        """Return once an item is waiting (none is taken)."""
        while not self.depth:
            self._arrival = asyncio.get_running_loop().create_future()
            await self._arrival

    async def _within(self, deadline: float) -> _Pending | None:
        """A queued item at once, else the next to arrive before ``deadline``, else None."""
        if self._waiting:
            return self._waiting.popleft()
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return None
        try:
            async with asyncio.timeout(remaining):  # a timer, where wait_for would also make a task
                return await self._next()
        except TimeoutError:
            return None

    async def _collect(self, free_workers: asyncio.Semaphore) -> list[_Pending]:
        """The next batch, for a worker already taken from ``free_workers``."""
        already_waiting = self.depth > 0
        first = await self._first()
        self._batches_open += 1
        batch, tokens = [first], first.tokens
        load_evident = self._batches_open > 1 or already_waiting
        wait = self.policy.max_wait_s if free_workers.locked() and load_evident else 0.0
        deadline = time.perf_counter() + wait
        while len(batch) < self.policy.max_batch_size:
            pending = await self._within(deadline)
            if pending is None:
                break
            if tokens + pending.tokens > self.policy.max_batch_tokens:
                self._carry = pending
                break
            batch.append(pending)
            tokens += pending.tokens
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        free_workers = self._slots or asyncio.Semaphore(self.policy.workers)
        while True:
            if self._slots is not None:
                await self._something_waiting()
            await free_workers.acquire()
            batch = [p for p in await self._collect(free_workers) if not p.future.cancelled()]
            task = loop.create_task(self._run(loop, batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _: free_workers.release())

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        try:
            if batch:
                await self._execute(loop, batch)
        finally:
            self._batches_open -= 1

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        """Run one batch in a worker thread and settle its futures (the runner's error goes to all)."""
        batch.sort(key=lambda p: p.tokens, reverse=True)
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self._run_batch, [p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"runner returned {len(results)} results for {len(batch)} items")
        except Exception as error:  # the runner's failure belongs to every caller of this batch
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        finished = time.perf_counter()
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)
        if self._on_batch is not None:
            self._on_batch(BatchStats(len(batch), sum(p.tokens for p in batch),
                                      [started - p.enqueued for p in batch], finished - started))

    async def stop(self) -> None:
        """Stop accepting, finish every accepted item (queued or running), then stop the workers."""
        self._accepting = False
        while self.depth or self._batches_open:
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)
