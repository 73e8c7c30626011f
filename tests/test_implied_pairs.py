"""Pairs implied by paraphrase labels, one hop through a shared text."""

from pathlib import Path

from flipkd.training.data import Pair, load_pairs
from flipkd.training.distill_config import load_config
from flipkd.training.implied_pairs import implied_pairs

from .conftest import REPO


def test_a_paraphrase_and_a_non_paraphrase_of_one_question_are_a_negative():
    pairs = [Pair("q", "same", 1), Pair("q", "other", 0)]
    assert implied_pairs(pairs) == [Pair("same", "other", 0)]


def test_two_paraphrases_of_one_question_are_a_positive_and_two_negatives_imply_nothing():
    pairs = [Pair("q", "s1", 1), Pair("s2", "q", 1), Pair("q", "n1", 0), Pair("q", "n2", 0)]
    implied = {(p.text_a, p.text_b): p.label for p in implied_pairs(pairs)}
    assert implied == {("s1", "s2"): 1, ("s1", "n1"): 0, ("s1", "n2"): 0, ("s2", "n1"): 0, ("s2", "n2"): 0}


def test_labelled_pairs_in_either_order_and_contradictions_are_left_out():
    labelled = [Pair("q", "s", 1), Pair("q", "n", 0), Pair("n", "s", 1)]
    assert implied_pairs(labelled) == []
    contradicting = [Pair("a", "x", 1), Pair("a", "y", 0), Pair("b", "x", 1), Pair("b", "y", 1)]
    consistent = [Pair("c", "d", 1), Pair("c", "e", 0)]
    # (x, y) is implied negative through a and positive through b; (a, b) likewise through x and y
    assert implied_pairs(contradicting + consistent) == [Pair("d", "e", 0)]

def test_every_medical_question_yields_its_paraphrase_against_its_other_question():
    train = load_pairs(REPO / "data/medical_question_pairs/train.jsonl")
    implied = implied_pairs(train)
    assert len(implied) == len(train) // 2 and {p.label for p in implied} == {0}
    first, second = train[0], train[1]  # one question: its paraphrase (1), then its other question (0)
    assert first.text_a == second.text_a and (first.label, second.label) == (1, 0)
    assert implied[0] == Pair(first.text_b, second.text_b, 0)


def test_the_config_switch_adds_them_to_train_only(tmp_path: Path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text(f"data: {REPO / 'data/medical_question_pairs'}\nbase: smollm2-135m-instruct\n")
    plain = load_config(config_file, ["loss.kind=contrastive"])
    implied = load_config(config_file, ["loss.kind=contrastive", "train.implied_pairs=true"])
    assert implied.pairs("train")[:len(plain.pairs("train"))] == plain.pairs("train")
    assert len(implied.pairs("train")) == len(plain.pairs("train")) * 3 // 2
    assert implied.pairs("dev") == plain.pairs("dev")
