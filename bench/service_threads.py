"""Where the server's CPU goes under load: CPU seconds of each of its threads during a closed-loop run.

Usage: python bench/service_threads.py --data data/atec/test.jsonl \
           --requests 1200 --out bench/results/service_threads_atec.json      [--bundle DIR]

A fresh ``flipkd serve`` process (default settings, cache off, as the load benchmark), warmed up, then
``--requests`` pairs at ``--concurrency`` requests in flight, one pair per /match request. Each thread's
user + system CPU time is read from ``/proc/PID/task/TID/stat`` before and after; the report gives each
busy thread's CPU seconds, its share of the run's wall time, and the event loop's CPU per request
(the main thread runs uvicorn's loop: HTTP, validation, tokenizing, batching, metrics). On a machine
with as many cores as student workers, what the loop and the load generator use is taken from the
student's forwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from service_load import BENCH_SETTINGS, closed_loop, load_bench_parser, parse_load_bench_args

from flipkd.service.server import free_port, server_process
from flipkd.service.settings import Settings
from flipkd.training.data import load_pairs


def thread_cpu_seconds(pid: int) -> dict[tuple[int, str], float]:
    """(thread id, thread name) -> user + system CPU seconds so far, for every thread of ``pid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat, name = (task / "stat").read_text(), (task / "comm").read_text().strip()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 0
        seconds[(int(task.name), name)] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def main() -> None:
    parser = load_bench_parser(__doc__, requests=1200)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parse_load_bench_args(parser)
    pairs = [(p.text_a, p.text_b) for p in load_pairs(args.data)][:args.requests]
    settings = Settings(bundles=[str(args.bundle)], teacher=args.teacher, port=free_port(), **BENCH_SETTINGS)
    with server_process(settings) as (base, process):
        asyncio.run(closed_loop(base, pairs[-16:], 4))
        before, started = thread_cpu_seconds(process.pid), time.perf_counter()
        load = asyncio.run(closed_loop(base, pairs, args.concurrency))
        wall, after = time.perf_counter() - started, thread_cpu_seconds(process.pid)
    used = sorted(((after[key] - before.get(key, 0.0), key) for key in after), reverse=True)
    threads = [{"thread": name, "tid": tid, "cpu_s": round(cpu, 2), "share_of_wall": round(cpu / wall, 3)}
               for cpu, (tid, name) in used if cpu > 0]
    main_thread = next(row for row in threads if row["tid"] == process.pid)
    result = {"bundle": str(args.bundle), "data": str(args.data), "concurrency": args.concurrency,
              "wall_s": round(wall, 2), "load": load, "threads": threads,
              "event_loop_ms_per_request": round(1000 * main_thread["cpu_s"] / len(pairs), 3)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: value for key, value in result.items() if key != "load"}, indent=2))


if __name__ == "__main__":
    main()
