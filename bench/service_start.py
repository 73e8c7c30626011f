"""Time from `flipkd serve` (a new process, models already provisioned) to /readyz answering 200.

Usage: python bench/service_start.py --repeats 3 --out bench/results/service_start_atec.json \
           [--bundle DIR: default bundle] [--teacher DIR: default the teacher the bundle carries]

Ready means the student and the teacher are loaded and warmed up. Each repeat starts a fresh process
and stops it with SIGTERM once ready (the stop is not timed). The bundle's own teacher is exported to
ONNX into the model cache before the first repeat if it is not there yet (untimed: the export happens
once per machine) and found there by every repeat.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from service_load import parse_load_bench_args

from flipkd.models.bundle import DEFAULT_BUNDLE
from flipkd.service.server import free_port, server_process
from flipkd.service.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--teacher", type=Path, default=None,
                        help="teacher folder (ONNX or adapter); default: the one the bundle carries")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=Settings.model_fields["torch_threads"].default)
    parser.add_argument("--workers", type=int, default=Settings.model_fields["student_workers"].default)
    parser.add_argument("--out", type=Path, required=True)
    args = parse_load_bench_args(parser)
    if args.teacher is None:
        parser.error(f"{args.bundle}: the bundle carries no teacher; pass --teacher")
    seconds = []
    for _ in range(args.repeats):
        settings = Settings(bundles=[str(args.bundle)], teacher=args.teacher, port=free_port(),
                            torch_threads=args.threads, student_workers=args.workers)
        started = time.perf_counter()
        with server_process(settings):
            seconds.append(round(time.perf_counter() - started, 2))
        print(f"ready after {seconds[-1]} s", file=sys.stderr)
    result = {"bundle": str(args.bundle), "teacher": str(args.teacher), "threads": args.threads,
              "workers": args.workers,
              "seconds_to_ready": seconds, "max_s": max(seconds)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
