"""Every shipped distillation config reads and validates, and names data that is in the repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flipkd.training.distill_config import DistillConfig, load_config

from .conftest import REPO

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.fixture(autouse=True)
def outside_the_checkout(tmp_path, monkeypatch):
    """Read the configs from an empty folder: their ``runs/`` teachers are absent there, so an adapter
    teacher a local run left in ``runs/`` is never exported (that needs weights)."""
    monkeypatch.chdir(tmp_path)


def test_the_configs_folder_holds_the_documented_recipes():
    names = {path.name for path in CONFIGS}
    assert {"atec.yaml", "atec-full.yaml", "mqp-echo.yaml", "mqp-listwise.yaml", "smoke.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_config_validates_and_its_data_is_present(path):
    config = load_config(path)
    for split in ("train", "dev", "test"):
        assert (REPO / config.data / f"{split}.jsonl").is_file(), f"{path.name}: no {split} split"


def test_listwise_recipe_is_the_echo_recipe_plus_the_listwise_term():
    echo = load_config(REPO / "configs" / "mqp-echo.yaml")
    listwise = load_config(REPO / "configs" / "mqp-listwise.yaml")
    assert listwise.transfer.listwise_weight == 0.3 and echo.transfer.listwise_weight == 0.0
    assert listwise.encoder == echo.encoder and listwise.train == echo.train and listwise.loss == echo.loss


def test_listwise_term_without_a_transfer_set_is_an_error():
    with pytest.raises(ValueError, match="listwise_weight needs transfer.enabled"):
        load_config(REPO / "configs" / "mqp-listwise.yaml", ["transfer.enabled=false"])


def test_the_no_transfer_set_ablation_loads_over_a_config_with_the_embedding_term():
    config = load_config(REPO / "configs" / "mqp-echo.yaml", ["transfer.enabled=false"])
    assert not config.transfer.enabled and config.transfer.embedding_weight == 1.0


def test_the_shipped_atec_bundle_was_trained_by_its_documented_recipe():
    """configs/atec-echo.yaml names the training the default bundle records in its manifest (the teacher
    there is the model-cache export of the same adapter; options added after the bundle was trained are
    read at their defaults, which switch them off)."""
    recorded = json.loads((REPO / "models" / "bundles" / "atec" / "flipkd.json").read_text())["config"]
    defaults = DistillConfig(data=Path(recorded["data"]), base=recorded["base"]).to_json()
    recorded = {**recorded, **{section: {**values, **recorded[section]}
                               for section, values in defaults.items() if isinstance(values, dict)}}
    recipe = json.loads(json.dumps(load_config(REPO / "configs" / "atec-echo.yaml").to_json()))
    assert recorded["teacher_adapter"] == recipe["teacher"]
    teachers = ("teacher", "teacher_adapter")
    assert {key: value for key, value in recorded.items() if key not in teachers} == \
        {key: value for key, value in recipe.items() if key not in teachers}
