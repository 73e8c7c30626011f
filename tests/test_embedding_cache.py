import asyncio

import pytest

from flipkd.service.embedding_cache import EmbeddingCache


def test_repeated_and_concurrent_keys_compute_once():
    calls: list[str] = []

    async def scenario():
        cache: EmbeddingCache[str] = EmbeddingCache(capacity=2)

        def compute_for(key):
            async def compute():
                calls.append(key)
                await asyncio.sleep(0.02)
                return key.upper()
            return compute

        together = await asyncio.gather(*(cache.get_or_compute("a", compute_for("a")) for _ in range(5)))
        again = await cache.get_or_compute("a", compute_for("a"))
        await cache.get_or_compute("b", compute_for("b"))
        await cache.get_or_compute("c", compute_for("c"))  # evicts "a", the least recently used
        evicted = await cache.get_or_compute("a", compute_for("a"))
        return cache, together, again, evicted

    cache, together, again, evicted = asyncio.run(scenario())
    assert [value for value, _ in together] == ["A"] * 5
    assert sorted(hit for _, hit in together) == [False, True, True, True, True]
    assert again == ("A", True)
    assert evicted == ("A", False)
    assert calls == ["a", "b", "c", "a"]
    assert (cache.hits, cache.misses, len(cache)) == (5, 4, 2)


def test_failures_are_not_cached_and_a_leaving_caller_does_not_cancel_the_others():
    async def scenario():
        cache: EmbeddingCache[int] = EmbeddingCache(capacity=10)

        async def fail():
            raise RuntimeError("engine down")

        with pytest.raises(RuntimeError):
            await cache.get_or_compute("k", fail)

        async def slow():
            await asyncio.sleep(0.05)
            return 7

        leaving = asyncio.ensure_future(cache.get_or_compute("k", slow))
        staying = asyncio.ensure_future(cache.get_or_compute("k", slow))
        await asyncio.sleep(0.01)
        leaving.cancel()
        return await staying, len(cache)

    (value, joined), size = asyncio.run(scenario())
    assert value == 7 and joined is True and size == 1
