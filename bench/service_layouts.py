"""How to spend the cores on the student: one batch on all threads, or several single-threaded batches.

Usage: python bench/service_layouts.py --data data/atec/test.jsonl \
           --layout 1x2 --layout 2x1 --repeats 3 --out bench/results/service_layouts_atec.json

A layout ``WxT`` is ``student_workers=W`` batches at once on ``torch_threads=T`` threads each. The layouts
are run in turn, ``--repeats`` times (interleaved, so drifts of a noisy machine hit every layout alike):
a fresh ``flipkd serve`` process (default bundle, cache off), ``--requests`` pairs at ``--concurrency``
requests in flight, one pair per /match request. Writes every run and the mean per layout.
"""

from __future__ import annotations

import json

import numpy as np
from service_load import BENCH_SETTINGS, load_bench_parser, parse_load_bench_args, run_scenario

from flipkd.service.server import free_port
from flipkd.service.settings import Settings
from flipkd.training.data import load_pairs


def main() -> None:
    parser = load_bench_parser(__doc__, requests=600)
    parser.add_argument("--layout", action="append", required=True, metavar="WORKERSxTHREADS")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parse_load_bench_args(parser)
    pairs = [(p.text_a, p.text_b) for p in load_pairs(args.data)][:args.requests]
    runs = []
    for repeat in range(args.repeats):
        for layout in args.layout:
            workers, threads = (int(part) for part in layout.split("x"))
            settings = Settings(bundles=[str(args.bundle)], teacher=args.teacher, **BENCH_SETTINGS,
                                torch_threads=threads, student_workers=workers, port=free_port())
            (result,) = run_scenario(settings, pairs, [args.concurrency], f"{layout} #{repeat}")
            runs.append({"layout": layout, "repeat": repeat} | result)
            print(f"{layout} #{repeat}: {result['texts_per_s']:.1f} texts/s, p50 {result['p50_ms']:.0f} ms, "
                  f"p99 {result['p99_ms']:.0f} ms", flush=True)
    summary = {layout: {key: float(np.mean([r[key] for r in runs if r["layout"] == layout]))
                        for key in ("texts_per_s", "p50_ms", "p99_ms")} for layout in args.layout}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"bundle": str(args.bundle), "data": str(args.data),
                                    "concurrency": args.concurrency, "mean": summary, "runs": runs},
                                   indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
