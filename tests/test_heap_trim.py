"""Returning the C heap's free pages: a fragmented heap shrinks in resident memory when trimmed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flipkd.service.heap_trim import heap_trimmer

# Fills the heap with 100 KB blocks (under glibc's mmap threshold, so they come from the heap), frees
# every other one so no free stretch reaches the heap's top, and prints VmRSS (KiB) before and after.
FRAGMENT_AND_TRIM = """
import sys
from flipkd.service.heap_trim import heap_trimmer
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
blocks = [bytearray(100_000) for _ in range(3000)]
del blocks[0::2]
before = rss()
released = heap_trimmer()()
print(before, rss(), released)
"""


@pytest.mark.skipif(heap_trimmer() is None, reason="the C library has no malloc_trim")
def test_trim_returns_the_free_pages_of_a_fragmented_heap():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    result = subprocess.run([sys.executable, "-c", FRAGMENT_AND_TRIM], capture_output=True, text=True,
                            check=True, env=env)
    before, after, released = (int(value) for value in result.stdout.split())
    assert released == 1
    assert before - after > 100_000  # of the ~150 MB freed, most goes back to the OS
