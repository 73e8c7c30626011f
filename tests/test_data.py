import json
from pathlib import Path

import pytest

from flipkd.training.data import SPLITS, Pair, PairFileError, load_pairs, split_path

from .conftest import DATA

GOOD = {"text_a": "how do I pay", "text_b": "how to pay", "label": 1}


def write_lines(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_loads_valid_pairs(tmp_path):
    path = write_lines(tmp_path, [json.dumps(GOOD), json.dumps({**GOOD, "label": 0})])
    assert load_pairs(path) == [Pair("how do I pay", "how to pay", 1), Pair("how do I pay", "how to pay", 0)]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a", "b", 1]', "expected a JSON object"),
        (json.dumps({"text_b": "x", "label": 1}), "'text_a' is missing"),
        (json.dumps({**GOOD, "text_b": "   "}), "'text_b' is empty"),
        (json.dumps({**GOOD, "text_a": 5}), "'text_a' is missing or not a string"),
        (json.dumps({**GOOD, "label": 2}), "'label' must be 0 or 1"),
        (json.dumps({**GOOD, "label": True}), "'label' must be 0 or 1"),
        (json.dumps({**GOOD, "label": "1"}), "'label' must be 0 or 1"),
        ("", "empty line"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, bad_line, message):
    path = write_lines(tmp_path, [json.dumps(GOOD), json.dumps(GOOD), bad_line, json.dumps(GOOD)])
    with pytest.raises(PairFileError) as caught:
        load_pairs(path)
    assert f"{path}:3:" in str(caught.value)
    assert message in str(caught.value)


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(PairFileError, match="no pairs"):
        load_pairs(path)


def test_missing_split_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="dev.jsonl"):
        split_path(tmp_path, "dev")


@pytest.mark.parametrize("dataset", ["atec", "medical_question_pairs", "nfcorpus", "mrpc"])
def test_shipped_datasets_load_with_both_classes(dataset):
    assert (DATA / dataset / "SOURCE.md").is_file()
    for split in SPLITS:
        pairs = load_pairs(split_path(DATA / dataset, split))
        assert {p.label for p in pairs} == {0, 1}
