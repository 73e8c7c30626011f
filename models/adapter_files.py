"""Saving a PEFT model as a plain, portable adapter folder."""

from __future__ import annotations

import json
from pathlib import Path

from peft import PeftModel

from flipkd.models.teacher_config import ADAPTER_CONFIG


def save_plain_adapter(model: PeftModel, folder: Path, base_name: str | None = None) -> None:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` only (no model card), recording
    ``base_name`` (a portable model name) instead of this machine's base folder when given."""
    folder = Path(folder)
    model.save_pretrained(str(folder))
    (folder / "README.md").unlink(missing_ok=True)
    if base_name is not None:
        config_file = folder / ADAPTER_CONFIG
        config = json.loads(config_file.read_text())
        config["base_model_name_or_path"] = base_name
        config_file.write_text(json.dumps(config, indent=2) + "\n")
