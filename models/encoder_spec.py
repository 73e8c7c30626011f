"""The encoder spec: which LoRA A projections form the student's text representation.

Representation of a text x (FlipKD reads the LoRA down-projection A as an encoder):
    z_m = pool_t(A_m h_{m,t})  for each read module m (h_{m,t}: the module's input at token t),
    z = normalize(concat_m z_m),  dim(z) = r * len(modules read),
where pool is the mean over tokens under the attention mask (or the last real token), and a pair's
similarity is cos(z_a, z_b) = z_a . z_b. With ``echo`` the model reads ``x SEP x`` (SEP: a newline token)
and the mean runs over the second copy only, whose every token has attended to the whole text (echo
embeddings, Springer et al. 2024); ``max_length`` bounds each copy. With ``bidirectional`` the read
layers (the lowest read layer up) attend to every real token, before and after (padding mask only); the
layers below stay causal (LLM2Vec, BehnamGhader et al. 2024, without its adaptation stage). The spec is
saved in the bundle manifest so training and serving read the same modules the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Pooling = Literal["mean", "last"]


@dataclass(frozen=True)
class EncoderSpec:
    """LoRA placement (``modules`` x ``layers``), rank, pooling, template, max length, echo and the read
    layers' attention direction."""

    modules: tuple[str, ...] = ("q_proj",)
    layers: tuple[int, ...] = (-4, -3, -2, -1)
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    pooling: Pooling = "mean"
    normalize: bool = True
    template: str = "{text}"
    max_length: int = 64
    echo: bool = False
    bidirectional: bool = False

    def __post_init__(self) -> None:
        if not self.modules or not self.layers:
            raise ValueError("an encoder spec reads at least one module in at least one layer")
        if self.pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last', got {self.pooling!r}")
        if "{text}" not in self.template:
            raise ValueError(f"template must contain '{{text}}', got {self.template!r}")
        if self.rank < 1 or self.max_length < 1:
            raise ValueError("rank and max_length must be positive")

    def resolved_layers(self, num_layers: int) -> tuple[int, ...]:
        """Layer indices in [0, num_layers), negatives counted from the top, sorted and distinct."""
        resolved = sorted({layer % num_layers if -num_layers <= layer < num_layers else -1
                           for layer in self.layers})
        if resolved and resolved[0] < 0:
            raise ValueError(f"layers {self.layers} out of range for a model with {num_layers} layers")
        return tuple(resolved)

    def format(self, text: str) -> str:
        return self.template.replace("{text}", text)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> EncoderSpec:
        tuples = {"modules", "layers"}
        return cls(**{key: tuple(value) if key in tuples else value for key, value in data.items()})
