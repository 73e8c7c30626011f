"""The student as it ran before the in-layer exit, for benchmarks that measure what the exit saves."""

from __future__ import annotations

from flipkd.models.lora_encoder import LoraEncoder


class WholeDeepestLayer(LoraEncoder):
    """The student without the in-layer exit: the deepest read layer's attention output and MLP run too."""

    def _capture_hook(self, key):
        def hook(_module, _inputs, output) -> None:
            self._captured()[key] = output

        return hook
