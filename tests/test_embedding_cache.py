import asyncio

import pytest

from flipkd.service.embedding_cache import EmbeddingCache


async def get(cache: EmbeddingCache, key: str, compute) -> tuple[object, bool]:
    """What a caller does: look up, and wait without cancelling the shared future."""
    future, hit = cache.lookup(key, compute)
    return await asyncio.shield(future), hit


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

        together = await asyncio.gather(*(get(cache, "a", compute_for("a")) for _ in range(5)))
        again = await get(cache, "a", compute_for("a"))
        await get(cache, "b", compute_for("b"))
        await get(cache, "c", compute_for("c"))  # evicts "a", the least recently used
        evicted = await get(cache, "a", compute_for("a"))
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
            await get(cache, "k", fail)

        async def slow():
            await asyncio.sleep(0.05)
            return 7

        leaving = asyncio.ensure_future(get(cache, "k", slow))
        staying = asyncio.ensure_future(get(cache, "k", slow))
        await asyncio.sleep(0.01)
        leaving.cancel()
        return await staying, len(cache)

    (value, joined), size = asyncio.run(scenario())
    assert value == 7 and joined is True and size == 1


def test_a_future_is_used_as_it_is_and_a_refusal_keeps_nothing():
    async def scenario():
        cache: EmbeddingCache[int] = EmbeddingCache(capacity=10)
        queued = asyncio.get_running_loop().create_future()
        future, hit = cache.lookup("k", lambda: queued)
        queued.set_result(3)
        await asyncio.sleep(0)

        def refuse():
            raise OverflowError("queue full")

        with pytest.raises(OverflowError):
            cache.lookup("other", refuse)
        return future is queued, hit, await get(cache, "k", refuse), len(cache)

    same, hit, again, size = asyncio.run(scenario())
    assert same and hit is False
    assert again == (3, True) and size == 1
