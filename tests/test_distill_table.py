"""The results table's seed rows: mean and sd of F1 over seeds, the median-F1 seed's threshold."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

from distill_table import named, seed_row  # noqa: E402


def run(seed: int, f1: float, rss: float) -> dict:
    return {"row": "FlipKD", "folder": f"runs/s{seed}", "threshold": seed / 100,
            "train_seconds": 100.0 * seed, "steps": 150, "seed": seed, "peak_rss_gib": rss,
            "f1": f1, "accuracy": f1 - 0.01, "auc": f1 + 0.05}


def test_one_seed_is_its_own_row():
    only = run(13, 0.8, 6.0)
    assert seed_row([only]) is only


def test_three_seeds_average_and_keep_the_median_seeds_threshold():
    row = seed_row([run(13, 0.80, 6.0), run(14, 0.90, 6.5), run(15, 0.85, 6.2)])
    assert row["folder"] == "runs/s15" and row["threshold"] == 0.15
    assert row["f1_median_seed"] == 0.85
    assert row["f1"] == pytest.approx(0.85)
    assert row["f1_sd"] == pytest.approx(0.05)
    assert row["auc"] == pytest.approx(0.90)
    assert row["train_seconds"] == pytest.approx(1400.0)
    assert row["peak_rss_gib"] == 6.5
    assert row["seed"] == "13/14/15" and len(row["seeds"]) == 3


def test_named_splits_seed_folders():
    assert named(["FlipKD=runs/a,runs/b"]) == [("FlipKD", [Path("runs/a"), Path("runs/b")])]
