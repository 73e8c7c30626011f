"""The results table's seed rows: mean and sd of F1 over seeds, the median-F1 seed's threshold."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .conftest import DATA, REPO

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


@pytest.mark.slow
def test_argmax_cut_recalibrates_teacher_and_bundle_on_dev(student_bundle, exported_teacher, tmp_path,
                                                           monkeypatch):
    """With ``--argmax-cut`` the teacher's and the bundle's thresholds are the plain best-F1 argmax of
    their dev scores; without it the bundle keeps the threshold it was published with."""
    import distill_table
    import numpy as np

    from flipkd.models.bundle import load_bundle
    from flipkd.models.lora_encoder import student_encoder
    from flipkd.models.onnx_teacher import OnnxTeacher
    from flipkd.training.data import load_pairs
    from flipkd.training.metrics import best_f1_threshold
    from flipkd.training.student_scores import student_scores

    data = tmp_path / "data"
    data.mkdir()
    lines = (DATA / "medical_question_pairs" / "dev.jsonl").read_text().splitlines(True)
    for split, start in (("dev", 0), ("test", 48)):
        (data / f"{split}.jsonl").write_text("".join(lines[start:start + 48]))
    rows_of = {}
    for flag in ([], ["--argmax-cut"]):
        out = tmp_path / ("argmax" if flag else "stored")
        monkeypatch.setattr(sys, "argv", ["distill_table.py", "--data", str(data), "--teacher",
                                          str(exported_teacher), "--bundle", f"FlipKD={student_bundle}",
                                          "--out", str(out), "--threads", "1", *flag])
        distill_table.main()
        rows_of[bool(flag)] = {row["row"]: row for row in json.loads((out / "rows.json").read_text())}
    dev = load_pairs(data / "dev.jsonl")
    labels = np.array([p.label for p in dev])
    bundle = load_bundle(student_bundle)
    teacher = OnnxTeacher(exported_teacher, threads=1)
    teacher_dev = teacher.score_pairs([p.text_a for p in dev], [p.text_b for p in dev])
    assert rows_of[False]["FlipKD"]["threshold"] == pytest.approx(bundle.threshold)
    assert rows_of[True]["FlipKD"]["threshold"] == pytest.approx(
        best_f1_threshold(student_scores(student_encoder(bundle), dev), labels), abs=1e-5)
    assert rows_of[True]["teacher"]["threshold"] == pytest.approx(best_f1_threshold(teacher_dev, labels),
                                                                  abs=1e-5)
    assert rows_of[True]["FlipKD"]["auc"] == pytest.approx(rows_of[False]["FlipKD"]["auc"])
