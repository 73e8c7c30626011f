"""Several domains in one process: resident memory with one and with two domains, and throughput with 50/50
mixed traffic against each domain's traffic alone, at concurrency 32.

Usage: python bench/multi_domain.py --requests 600 --rounds 3 --out bench/results/multi_domain

Every server is a fresh ``flipkd serve`` process (students only, no teacher; cache off; a queue and
deadline that never refuse). Memory: resident memory (all, anonymous, file-backed) once warmed up with
traffic to each of its domains and idle past one heap trim, and again after the throughput rounds, for
``--bundle atec`` and for ``--bundle atec --bundle mqp`` (the second domain's cost is the difference; MQP
runs base layers 0-11 where ATEC runs 0-7, so that difference includes four layers only MQP reads), and
for MQP alone against MQP beside a copy of itself under another name (the cost of a domain over layers
already loaded). ``--memory-only`` skips the throughput rounds.
Throughput: on the two-domain server each round runs all-ATEC, all-MQP and 50/50 traffic (pair i to ATEC
when i is even, to MQP otherwise; pairs from each domain's test split). An MQP text costs more than an
ATEC one (12 layers instead of 8, longer texts), so the mixed rate is compared with what the two domains
would give without interfering, 1 / (0.5 / ATEC-alone + 0.5 / MQP-alone) (medians over rounds): that
ratio is the share. The one-domain server runs the same ATEC-alone rounds, to show what merely loading a
second domain costs. Writes ``results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from service_load import BENCH_SETTINGS, closed_loop
from service_soak import memory_mib
from tqdm import tqdm

from flipkd.models.bundle import SHIPPED_BUNDLES, load_bundle
from flipkd.service.runtime import runtime_info
from flipkd.service.server import free_port, server_process
from flipkd.service.settings import Settings
from flipkd.training.data import load_pairs

CONCURRENCY = 32
REPLICA = "-replica"


def domain_pairs(domain: str, count: int) -> list[tuple[str, str]]:
    """The first ``count`` pairs of a shipped domain's test split (repeated when it has fewer)."""
    data = Path(load_bundle(SHIPPED_BUNDLES / domain, verify=False).manifest["config"]["data"]) / "test.jsonl"
    pairs = [(p.text_a, p.text_b) for p in load_pairs(data)]
    return [pairs[i % len(pairs)] for i in range(count)]


def serve_rounds(domains: list[str], workloads: dict[str, tuple[list[tuple[str, str]], tuple[str, ...]]],
                 rounds: int) -> dict:
    """A fresh server for ``domains``; memory once warm, then ``rounds`` rounds of every workload in
    turn, then memory again."""
    settings = Settings(bundles=domains, port=free_port(), **BENCH_SETTINGS)
    with server_process(settings) as (base, server):
        for domain in domains:  # warm each domain's HTTP path and batchers
            name = Path(domain).name
            asyncio.run(closed_loop(base, domain_pairs(name.removesuffix(REPLICA), 64), 8, domains=(name,)))
        time.sleep(settings.heap_trim_interval_s + 1.0)  # idle past a heap trim: no warm-up garbage
        warm = memory_mib(server.pid)
        runs: dict[str, list[dict]] = {name: [] for name in workloads}
        for _ in tqdm(range(rounds), desc="+".join(domains)):
            for name, (pairs, targets) in workloads.items():
                runs[name].append(asyncio.run(closed_loop(base, pairs, CONCURRENCY, domains=targets)))
        time.sleep(settings.heap_trim_interval_s + 1.0)
        loaded = memory_mib(server.pid)
    rates = {name: float(np.median([run["texts_per_s"] for run in rows])) for name, rows in runs.items()
             if rows}
    return {"domains": domains, "memory_warm_mib": warm, "memory_after_load_mib": loaded,
            "median_texts_per_s": rates, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="pairs per round and workload")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory-only", action="store_true", help="the memory figures alone")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.memory_only:
        args.rounds = 0
    atec = domain_pairs("atec", args.requests)
    mqp = domain_pairs("mqp", args.requests)
    mixed = [atec[i // 2] if i % 2 == 0 else mqp[i // 2] for i in range(args.requests)]
    alone = {"atec_alone": (atec, ("atec",))}
    one = serve_rounds(["atec"], alone, args.rounds)
    two = serve_rounds(["atec", "mqp"], alone | {"mqp_alone": (mqp, ("mqp",)),
                                                 "mixed_50_50": (mixed, ("atec", "mqp"))}, args.rounds)
    with tempfile.TemporaryDirectory() as scratch:
        replica = Path(scratch) / f"mqp{REPLICA}"
        shutil.copytree(SHIPPED_BUNDLES / "mqp", replica)
        mqp_alone = serve_rounds(["mqp"], {}, 0)
        mqp_twice = serve_rounds(["mqp", str(replica)], {}, 0)

    def added(before: dict, after: dict) -> dict:
        return {key: after["memory_warm_mib"][key] - before["memory_warm_mib"][key]
                for key in before["memory_warm_mib"]}

    second_domain = added(one, two)
    rates = two["median_texts_per_s"]
    without_interference = 1 / (0.5 / rates["atec_alone"] + 0.5 / rates["mqp_alone"]) if rates else None
    share = rates["mixed_50_50"] / without_interference if rates else None
    result = {"concurrency": CONCURRENCY, "requests": args.requests, "rounds": args.rounds,
              "runtime": runtime_info(), "one_domain": one, "two_domains": two,
              "second_domain_adds_mib": second_domain,
              "same_layers": {"mqp_alone": mqp_alone, "mqp_and_replica": mqp_twice,
                              "replica_adds_mib": added(mqp_alone, mqp_twice)},
              "mixed_without_interference_texts_per_s": without_interference,
              "mixed_over_alone": share,
              "two_domain_server_over_one_domain_server_atec_alone":
                  rates["atec_alone"] / one["median_texts_per_s"]["atec_alone"] if rates else None,
              "goals": {"second_domain_adds_at_most_mib": 150, "mixed_over_alone_at_least": 0.85}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("second_domain_adds_mib", "mixed_over_alone")}
                     | {"replica_adds_mib": result["same_layers"]["replica_adds_mib"]}, indent=2))
    print(json.dumps({"one": one["median_texts_per_s"], "two": two["median_texts_per_s"]}, indent=2))


if __name__ == "__main__":
    main()
