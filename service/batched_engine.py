"""An engine behind its own dynamic batcher and embedding cache, reporting to the metrics.

``embed(texts)`` splits a request into texts and tokenizes the distinct ones; each is looked up in the
cache (by text), joined if already in flight, or queued for the batcher as its token ids (as futures:
no task per text). Results come back in request order, with the number of tokens they hold. Before it
starts, an engine runs :func:`warm_up_batches`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial

import numpy as np

from flipkd.service.batching import BatchPolicy, BatchStats, DynamicBatcher
from flipkd.service.embedding_cache import EmbeddingCache
from flipkd.service.engines import Engine
from flipkd.service.metrics import ServiceMetrics

WARM_UP_TEXT = "warm-up"


def warm_up_batches(max_batch_size: int) -> list[list[str]]:
    """What an engine runs before it is ready: a full batch of the longest texts first (truncated to the
    engine's max length), so the heap and the runtime's arenas reach their working size before the first
    request instead of during the first thousand, then a full batch of short texts and a single text."""
    longest = " ".join([WARM_UP_TEXT] * 512)
    return [[longest] * max_batch_size, [WARM_UP_TEXT] * max_batch_size, [WARM_UP_TEXT]]


class BatchedEngine:
    """``engine`` behind a batcher and a cache, serving ``domain``; ``name``, ``threshold`` and ``dim`` are
    the engine's. ``slots``: batch slots shared with other engines' batchers (:class:`DynamicBatcher`)."""

    def __init__(self, engine: Engine, policy: BatchPolicy, cache_size: int, metrics: ServiceMetrics,
                 domain: str, slots: asyncio.Semaphore | None = None) -> None:
        self.engine = engine
        self.name = engine.name
        self.domain = domain
        self.threshold = engine.threshold
        self.dim = engine.dim
        self.metrics = metrics
        self.batcher: DynamicBatcher[list[int], np.ndarray] = DynamicBatcher(self._run, policy, self._record,
                                                                             f"{domain}-{engine.name}",
                                                                             slots)
        self.cache: EmbeddingCache[np.ndarray] = EmbeddingCache(cache_size)

    def _run(self, ids: Sequence[list[int]]) -> list[np.ndarray]:
        return list(self.engine.embed_ids(ids))

    def _record(self, stats: BatchStats) -> None:
        metrics, labels = self.metrics, (self.domain, self.name)
        metrics.series(metrics.batch_size, *labels).observe(stats.size)
        metrics.series(metrics.batch_tokens, *labels).observe(stats.tokens)
        metrics.series(metrics.inference, *labels).observe(stats.run_seconds)
        metrics.series(metrics.texts, *labels).inc(stats.size)
        queue_wait = metrics.series(metrics.queue_wait, *labels)
        for wait in stats.queue_waits:
            queue_wait.observe(wait)

    async def warm_up(self, batches: Sequence[Sequence[str]]) -> None:
        await self.batcher.warm_up([self.engine.token_ids(texts) for texts in batches])

    def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()

    @property
    def depth(self) -> int:
        return self.batcher.depth

    async def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """(N, D) unit-length embeddings in request order and the tokens of the N texts (a repeated text
        counts each time); raises QueueFull when the queue is full, BatcherStopped once stopping. A caller
        that goes away leaves its texts to finish (and be cached) for the others."""
        distinct = list(dict.fromkeys(texts))
        token_ids = self.engine.token_ids(distinct)
        looked_up = [self.cache.lookup(text, partial(self.batcher.enqueue, ids, len(ids)))
                     for text, ids in zip(distinct, token_ids, strict=True)]
        # all are running already; shielded, so that a caller going away cancels none of them
        results = [future.result() if future.done() else await asyncio.shield(future)
                   for future, _ in looked_up]
        hits = sum(hit for _, hit in looked_up)
        for outcome, count in (("hit", hits), ("miss", len(looked_up) - hits)):
            if count:
                self.metrics.series(self.metrics.cache, self.domain, self.name, outcome).inc(count)
        vectors = dict(zip(distinct, results, strict=True))
        tokens = {text: len(ids) for text, ids in zip(distinct, token_ids, strict=True)}
        return np.array([vectors[text] for text in texts]), sum(tokens[text] for text in texts)
