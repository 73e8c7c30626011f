"""The dynamic batcher with a plain function as the runner (no model)."""

import asyncio
import threading
import time

import pytest

from flipkd.service.batching import BatcherStopped, BatchPolicy, BatchStats, DynamicBatcher, QueueFull


class Recorder:
    """A runner that records its batches and can be held to build up a queue."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set once a batch has reached the runner
        self.held = threading.Event()  # a batch holding the item "held" waits for this

    def __call__(self, items):
        self.entered.set()
        if "held" in items:
            self.held.wait()
        self.gate.wait()
        time.sleep(self.delay)
        self.batches.append(list(items))
        return [item.upper() for item in items]


def run(coroutine):
    return asyncio.run(coroutine)


def test_results_reach_their_callers_and_batches_form_under_load():
    async def scenario():
        runner = Recorder(delay=0.02)
        stats: list[BatchStats] = []
        batcher = DynamicBatcher(runner, BatchPolicy(max_batch_size=8, max_wait_s=0.01), stats.append)
        batcher.start()
        texts = [f"text {i}" for i in range(40)]
        results = await asyncio.gather(*(batcher.submit(t, tokens=3) for t in texts))
        await batcher.stop()
        return texts, results, runner, stats

    texts, results, runner, stats = run(scenario())
    assert results == [t.upper() for t in texts]
    assert max(len(b) for b in runner.batches) == 8
    assert len(runner.batches) <= 6
    assert sum(s.size for s in stats) == 40 and all(s.tokens == 3 * s.size for s in stats)


def test_token_budget_closes_a_batch_and_batches_are_sorted_longest_first():
    async def scenario():
        runner = Recorder()
        runner.gate.clear()
        policy = BatchPolicy(max_batch_size=100, max_batch_tokens=10, max_wait_s=0.05)
        batcher = DynamicBatcher(runner, policy)
        batcher.start()
        blocker = asyncio.ensure_future(batcher.submit("blocker", 1))
        await asyncio.sleep(0.1)  # the blocker's batch is running and held at the gate
        lengths = {"a": 2, "bbbb": 4, "cc": 3, "d": 1, "eeeee": 5}
        tasks = [asyncio.ensure_future(batcher.submit(t, n)) for t, n in lengths.items()]
        await asyncio.sleep(0.01)
        runner.gate.set()
        await asyncio.gather(blocker, *tasks)
        await batcher.stop()
        return runner.batches

    batches = run(scenario())
    assert batches[0] == ["blocker"]
    assert batches[1] == ["bbbb", "cc", "a", "d"]  # 2+4+3+1 = 10 tokens; "eeeee" would pass the budget
    assert batches[2] == ["eeeee"]


def test_an_item_left_waiting_still_gathers_what_arrives_once_a_worker_is_free():
    """The wait is counted from when the worker takes the batch, not from when its first item arrived:
    a leftover does not run alone while the answered callers are sending their next items."""
    async def scenario():
        runner = Recorder()
        runner.gate.clear()
        batcher = DynamicBatcher(runner, BatchPolicy(max_batch_size=8, max_wait_s=0.3))
        batcher.start()
        blocker = asyncio.ensure_future(batcher.submit("blocker", 1))
        assert await asyncio.to_thread(runner.entered.wait, 10)  # its batch is held at the gate
        leftover = asyncio.ensure_future(batcher.submit("leftover", 1))
        await asyncio.sleep(0.4)  # the leftover has waited longer than max_wait behind the held batch
        runner.gate.set()
        await blocker
        await asyncio.sleep(0.01)
        late = [asyncio.ensure_future(batcher.submit(t, 1)) for t in ("next a", "next b")]
        await asyncio.gather(leftover, *late)
        await batcher.stop()
        return runner.batches

    assert run(scenario()) == [["blocker"], ["leftover", "next a", "next b"]]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_lone_item_on_an_idle_batcher_runs_at_once(workers):
    async def scenario():
        runner = Recorder()
        batcher = DynamicBatcher(runner, BatchPolicy(max_batch_size=8, max_wait_s=0.5, workers=workers))
        batcher.start()
        alone = asyncio.ensure_future(batcher.submit("alone", 1))
        await asyncio.sleep(0.05)
        later = asyncio.ensure_future(batcher.submit("later", 1))
        await asyncio.gather(alone, later)
        await batcher.stop()
        return runner.batches

    assert run(scenario()) == [["alone"], ["later"]]  # waiting 0.5 s would have put both in one batch


def test_with_every_other_worker_busy_a_batch_waits_for_company():
    async def scenario():
        runner = Recorder()
        batcher = DynamicBatcher(runner, BatchPolicy(max_batch_size=8, max_wait_s=0.3, workers=2))
        batcher.start()
        held = asyncio.ensure_future(batcher.submit("held", 1))
        assert await asyncio.to_thread(runner.entered.wait, 10)  # one worker is busy until released
        first = asyncio.ensure_future(batcher.submit("first", 1))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(batcher.submit("second", 1))
        await asyncio.gather(first, second)
        runner.held.set()
        await held
        await batcher.stop()
        return runner.batches

    assert run(scenario()) == [["first", "second"], ["held"]]


def test_full_queue_is_refused_at_once():
    async def scenario():
        runner = Recorder()
        runner.gate.clear()
        batcher = DynamicBatcher(runner, BatchPolicy(max_batch_size=1, max_queue=3, max_wait_s=0.0))
        batcher.start()
        running = asyncio.ensure_future(batcher.submit("running", 1))
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(batcher.submit(f"q{i}", 1)) for i in range(3)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull):
            await batcher.submit("one too many", 1)
        runner.gate.set()
        await asyncio.gather(running, *queued)
        await batcher.stop()

    run(scenario())


def test_runner_failure_reaches_every_caller_of_the_batch_and_the_batcher_goes_on():
    calls = {"n": 0}

    def flaky(items):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("model broke")
        return list(items)

    async def scenario():
        batcher = DynamicBatcher(flaky, BatchPolicy(max_batch_size=4, max_wait_s=0.02))
        batcher.start()
        first = await asyncio.gather(*(batcher.submit(i, 1) for i in range(3)), return_exceptions=True)
        second = await batcher.submit("after", 1)
        await batcher.stop()
        return first, second

    first, second = run(scenario())
    assert all(isinstance(r, ValueError) for r in first)
    assert second == "after"


def test_stop_finishes_accepted_work_and_refuses_new_work():
    async def scenario():
        runner = Recorder(delay=0.05)
        batcher = DynamicBatcher(runner, BatchPolicy(max_batch_size=2, max_wait_s=0.0))
        batcher.start()
        accepted = [asyncio.ensure_future(batcher.submit(f"t{i}", 1)) for i in range(6)]
        await asyncio.sleep(0.01)
        await batcher.stop()
        assert all(task.done() for task in accepted)
        with pytest.raises(BatcherStopped):
            await batcher.submit("late", 1)
        return [task.result() for task in accepted]

    assert run(scenario()) == [f"T{i}" for i in range(6)]


class Overlap:
    """A runner that measures how many of its calls run at the same time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0

    def __call__(self, items):
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        time.sleep(0.05)
        with self.lock:
            self.active -= 1
        return [item.upper() for item in items]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_at_most_workers_batches_run_at_once_and_stop_drains_them_all(workers):
    async def scenario():
        runner = Overlap()
        batcher = DynamicBatcher(runner, BatchPolicy(max_batch_size=4, max_wait_s=0.001, workers=workers))
        batcher.start()
        texts = [f"text {i}" for i in range(48)]
        tasks = [asyncio.ensure_future(batcher.submit(t, 1)) for t in texts]
        await asyncio.sleep(0.06)
        await batcher.stop()  # everything accepted is finished before stop returns
        return texts, [task.result() for task in tasks], runner

    texts, results, runner = run(scenario())
    assert results == [t.upper() for t in texts]
    assert runner.most == workers


def test_warm_up_runs_every_batch_in_every_worker_thread_before_start():
    async def scenario():
        threads: list[tuple[str, int]] = []

        def runner(items):
            time.sleep(0.02)
            threads.append((threading.current_thread().name, len(items)))
            return list(items)

        batcher = DynamicBatcher(runner, BatchPolicy(workers=2), name="warm")
        await batcher.warm_up([["a"] * 4, ["b"]])
        batcher.start()
        assert await batcher.submit("c", 1) == "c"
        await batcher.stop()
        return threads

    threads = run(scenario())
    assert [size for _, size in threads[:4]] == [4, 4, 1, 1]
    assert len({name for name, _ in threads[:2]}) == 2 and all(n.startswith("warm") for n, _ in threads)


def test_batchers_sharing_slots_run_at_most_that_many_batches_and_an_idle_one_holds_none():
    async def scenario():
        runner = Overlap()  # one runner for both, so it sees every batch of either
        slots = asyncio.Semaphore(2)
        policy = BatchPolicy(max_batch_size=4, max_wait_s=0.001, workers=2)
        first, second = (DynamicBatcher(runner, policy, slots=slots) for _ in range(2))
        first.start()
        second.start()
        await asyncio.sleep(0.01)  # both loops are waiting for items; neither may hold a slot
        alone = [asyncio.ensure_future(first.submit(f"a{i}", 1)) for i in range(16)]
        await asyncio.gather(*alone)
        most_alone, runner.most = runner.most, 0
        mixed = [asyncio.ensure_future(batcher.submit(f"m{i}", 1)) for i in range(48)
                 for batcher in (first, second)]
        await asyncio.gather(*mixed)
        await first.stop()
        await second.stop()
        return most_alone, runner.most, [task.result() for task in mixed]

    most_alone, most_mixed, results = run(scenario())
    assert most_alone == 2  # the idle batcher pinned no slot: the busy one used both
    assert most_mixed == 2  # four worker threads in all, two slots: never more than two batches at once
    assert results == [f"M{i}" for i in range(48) for _ in range(2)]
