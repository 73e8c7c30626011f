"""LLM rewrites of the training texts, and their use as transfer-set text."""

from __future__ import annotations

import json

import pytest
import torch

from flipkd.main import main
from flipkd.training.data import distinct_texts, load_pairs
from flipkd.training.paraphrase import ParaphraseConfig, write_paraphrases
from flipkd.training.transfer_set import extra_texts

PAIRS = [
    ("Can I take ibuprofen with coffee?", "Is coffee safe after ibuprofen?", 1),
    ("Can I take ibuprofen with coffee?", "Which painkiller helps a headache?", 0),
    ("How do I treat a mild fever at home?", "What helps a mild fever at home?", 1),
]


@pytest.fixture
def dataset(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps({"text_a": a, "text_b": b, "label": y}) + "\n"
                                                  for a, b, y in PAIRS))
    return folder


def test_training_texts_are_distinct_in_order_of_first_appearance(dataset):
    assert distinct_texts(load_pairs(dataset / "train.jsonl")) == [
        "Can I take ibuprofen with coffee?", "Is coffee safe after ibuprofen?",
        "Which painkiller helps a headache?", "How do I treat a mild fever at home?",
        "What helps a mild fever at home?"]


@pytest.mark.parametrize("option", [["--shard", "2/2"], ["--shard", "a/2"], ["--shard", "1"],
                                    ["--style", "poem"]])
def test_a_bad_shard_or_style_is_refused_by_the_cli(dataset, tmp_path, option, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["paraphrase", "--data", str(dataset), "--out", str(tmp_path / "p.jsonl"), *option])
    assert stopped.value.code == 2
    assert option[0] in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists()


@pytest.mark.slow
@pytest.mark.parametrize("style", ["paraphrase", "related"])
def test_rewrites_of_a_real_instruct_model_feed_the_transfer_set(dataset, smollm_dir, tmp_path, style):
    out = tmp_path / "rewrites.jsonl"
    config = ParaphraseConfig(per_text=2, max_new_tokens=48, batch_size=4, seed=0, style=style)
    shards = [write_paraphrases(dataset, str(smollm_dir), tmp_path / f"shard-{i}.jsonl", config,
                                torch.float32, shard=(i, 2)) for i in range(2)]
    assert [s["texts"] for s in shards] == [3, 2]
    written = "".join((tmp_path / f"shard-{i}.jsonl").read_text(encoding="utf-8") for i in range(2))
    records = [json.loads(line) for line in written.splitlines()]
    assert len(records) == sum(s["rewrites"] for s in shards)
    sources = set(distinct_texts(load_pairs(dataset / "train.jsonl")))
    assert records, "the model kept no rewrite of five questions"
    for record in records:
        assert set(record) == {"text", "source", "style"} and record["source"] in sources
        assert record["style"] == style
        assert record["text"].strip() and "\n" not in record["text"]
        assert record["text"].lower() != record["source"].lower()
    out.write_text(written, encoding="utf-8")
    assert set(extra_texts([f"{out}:text"], 64, None)) == {r["text"] for r in records}
