"""The seed-ensemble analysis on a real (tiny) distilled bundle: a bundle averaged with itself is itself."""

from __future__ import annotations

import json
import sys

import pytest

from .conftest import DATA, REPO

sys.path.insert(0, str(REPO / "bench"))

import student_ensemble  # noqa: E402


@pytest.mark.slow
def test_a_bundle_twice_correlates_fully_and_its_mean_ranks_as_it_does(student_bundle, tmp_path, monkeypatch):
    data = tmp_path / "dev.jsonl"
    dev_lines = (DATA / "medical_question_pairs" / "dev.jsonl").read_text().splitlines(True)
    data.write_text("".join(dev_lines[:48]))
    out = tmp_path / "ensemble.json"
    monkeypatch.setattr(sys, "argv", ["student_ensemble.py", "--data", str(data), "--out", str(out),
                                      "--bundle", str(student_bundle), "--bundle", str(student_bundle)])
    student_ensemble.main()
    result = json.loads(out.read_text())
    assert result["n"] == 48 and len(result["rows"]) == 3
    alone, _, mean = result["rows"]
    assert mean["bundle"] == "mean cosine of all"
    assert mean["auc"] == pytest.approx(alone["auc"]) and mean["best_f1"] == pytest.approx(alone["best_f1"])
    assert 0.0 <= alone["auc"] <= 1.0 and 0.0 < alone["best_f1"] <= 1.0
    assert [value for row in result["score_correlation"] for value in row] == pytest.approx([1.0] * 4)
