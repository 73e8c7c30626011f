"""The student: a decoder-only LM with PEFT LoRA whose A projections, pooled, are the text encoder.

Only the transformer layers up to the deepest layer read are ever run (the rest, the final norm and
``lm_head`` are never computed), and that layer only until its last LoRA A output is captured: the pass
stops there (its attention and MLP would change nothing read). Training splits the forward in two stages
so it can freeze and cache the first one:
    h0 = body(layers[0:low])(tokens)            frozen, no LoRA: cacheable per text
    z  = encoder(layers[low:deep+1])(h0)        LoRA A outputs captured by hooks, pooled, concatenated
where ``low``/``deep`` are the lowest/deepest layers the spec reads. A bidirectional spec runs
layers[low:deep+1] with a padding-only mask (every token attends to every real token); layers[0:low] stay
causal, so the frozen stage is the same either way.
Formulas: :mod:`flipkd.models.encoder_spec`.
``forward`` runs layers[0:deep+1] in one pass without changing the module, and hooks capture into
thread-local storage, so several threads may run ``forward``/``embed`` at once (the two-stage methods
are for the single training thread). Tokenizing and batching are :mod:`flipkd.models.text_encoder`'s;
:func:`student_encoder` builds a bundle's encoder.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import AutoConfig

from flipkd.models.adapter_files import save_plain_adapter
from flipkd.models.attention_masks import run_layers
from flipkd.models.base_models import BaseModels, backend_copy, causal_tokenizer, load_causal_lm
from flipkd.models.build_lock import MODEL_BUILD_LOCK
from flipkd.models.bundle import Bundle
from flipkd.models.encoder_spec import EncoderSpec
from flipkd.models.padding import STUDENT_CPU_OVERHEAD_TOKENS
from flipkd.models.pooling import masked_mean, second_copy_mask
from flipkd.models.precision import compute_dtype
from flipkd.models.provision import resolve_model
from flipkd.models.text_encoder import TextEncoder, echo_separator, ids_only

ADAPTER_NAME = "default"


def last_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """h at each row's last real token (right padding): hidden (B, T, D), mask (B, T) -> (B, D)."""
    last = mask.long().sum(dim=1).clamp(min=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class _AllRead(Exception):
    """Raised by the capture hook once every LoRA A output read is captured: the rest of the pass is moot."""


class _Captures(threading.local):
    """Per-thread LoRA A outputs, keyed by (layer, module); each thread starts with an empty dict."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[int, str], torch.Tensor] = {}


class LoraEncoder(nn.Module, TextEncoder[torch.Tensor]):
    """Embeds texts with the pooled LoRA-A outputs named by an :class:`EncoderSpec`: inputs are tensors on
    the encoder's device, embeddings (N, ``dim``) float32 tensors on the CPU. With ``bases`` the base's
    weights are shared with the other encoders built from it (serving several domains); else its own."""

    def __init__(self, base: str, spec: EncoderSpec, adapter: Path | None = None,
                 dtype: torch.dtype = torch.bfloat16, device: str = "cpu", trainable: bool = False,
                 bases: BaseModels | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.tokenizer = bases.tokenizer(base) if bases is not None else causal_tokenizer(base)
        self.layers_read = spec.resolved_layers(AutoConfig.from_pretrained(base).num_hidden_layers)
        causal_lm = bases.causal_lm(base, dtype, device, layers=self.layers_read[-1] + 1) \
            if bases is not None else load_causal_lm(base, dtype, device)
        if adapter is None:
            config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                                target_modules=list(spec.modules), layers_to_transform=list(self.layers_read),
                                bias="none")
            self.peft = get_peft_model(causal_lm, config)
        else:
            with MODEL_BUILD_LOCK:
                self.peft = PeftModel.from_pretrained(causal_lm, str(adapter), is_trainable=trainable)
        for name, parameter in self.peft.named_parameters():
            parameter.requires_grad_(trainable and "lora_" in name)
        self.body = self.peft.base_model.model.model
        low, deep = self.layers_read[0], self.layers_read[-1]
        all_layers = self.body.layers
        self.body.layers = nn.ModuleList(all_layers[:deep + 1])
        self._frozen_layers = nn.ModuleList(all_layers[:low])
        self._encoder_layers = nn.ModuleList(all_layers[low:deep + 1])
        self.body.norm = nn.Identity()
        self.peft.base_model.model.lm_head = nn.Identity()
        self.to(device)
        self._local = _Captures()
        self.pad_id = self.tokenizer.pad_token_id
        # its own copy of the fast tokenizer's backend, set up once: the transformers wrapper sets the
        # backend's truncation on every call, so a shared one is not safe to call from several threads
        self.ids_tokenizer = ids_only(backend_copy(base, self.tokenizer), spec.max_length)
        self.echo_separator = echo_separator(self.ids_tokenizer, spec.echo)
        self._read_keys = [(layer, module) for layer in self.layers_read for module in spec.modules]
        self.dim = spec.rank * len(self._read_keys)
        for layer, module in self._read_keys:
            lora_a = self._find(layer, module).lora_A[ADAPTER_NAME]
            lora_a.register_forward_hook(self._capture_hook((layer, module)))

    def _find(self, layer: int, module: str) -> nn.Module:
        matches = [m for name, m in self.body.layers[layer].named_modules() if name.split(".")[-1] == module]
        if len(matches) != 1:
            raise ValueError(f"layer {layer} has {len(matches)} modules named {module!r}")
        return matches[0]

    def _capture_hook(self, key: tuple[int, str]):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            captured = self._captured()
            captured[key] = output
            if len(captured) == len(self._read_keys):
                raise _AllRead

        return hook

    def _captured(self) -> dict[tuple[int, str], torch.Tensor]:
        """This thread's LoRA A outputs of the pass in progress."""
        return self._local.by_key

    @property
    def device(self) -> torch.device:
        return next(self.peft.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.peft.parameters()).dtype

    def format_text(self, text: str) -> str:
        return self.spec.format(text)

    def _as_input(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def _empty(self, rows: int) -> torch.Tensor:
        return torch.empty(rows, self.dim)

    def _forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(**inputs).cpu()

    def _overhead_tokens(self) -> int | None:
        """Padding costs as much as real tokens on CPU only."""
        return STUDENT_CPU_OVERHEAD_TOKENS if self.device.type == "cpu" else None

    @contextmanager
    def _running(self, layers: nn.ModuleList, first: int):
        """Make the body run only ``layers``, the base's layers from index ``first`` on (restored
        afterwards). Bases whose layers differ by type (Gemma 3: sliding-window or global attention, each
        with its own rotary base) look the type up by position in ``config.layer_types``, so that list is
        shifted to match."""
        original, config = self.body.layers, self.body.config
        types = getattr(config, "layer_types", None)
        self.body.layers = layers
        if types is not None:
            config.layer_types = types[first:]
        try:
            yield
        finally:
            self.body.layers = original
            if types is not None:
                config.layer_types = types

    def frozen_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states entering the lowest read layer (B, T, D); no LoRA below it, so no gradient."""
        with torch.no_grad(), self._running(self._frozen_layers, 0):
            embeds = self.body.embed_tokens(input_ids)
            if len(self._frozen_layers) == 0:
                return embeds
            output = self.body(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False)
            return output.last_hidden_state

    def encode_hidden(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Representation (B, dim) in float32 from :meth:`frozen_hidden`'s output."""
        low = self.layers_read[0]
        if self.spec.bidirectional:
            return self.read_pass(lambda: self.explicit_pass(hidden, attention_mask, first=low),
                                  attention_mask)
        with self._running(self._encoder_layers, low):
            return self._represent(attention_mask, inputs_embeds=hidden)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Representation (B, dim) in float32: layers[0:deep+1] in one pass (no LoRA below ``low``)."""
        if self.spec.bidirectional:
            return self.explicit_forward(input_ids, attention_mask)
        return self._represent(attention_mask, input_ids=input_ids)

    def explicit_forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """:meth:`forward`'s representation from :meth:`explicit_pass` over layers[0:deep+1] (what the
        ONNX graph traces)."""
        embeds = self.body.embed_tokens(input_ids)
        return self.read_pass(lambda: self.explicit_pass(embeds, attention_mask), attention_mask)

    def explicit_pass(self, hidden: torch.Tensor, attention_mask: torch.Tensor, first: int = 0) -> None:
        """Run layers[first:] over ``hidden`` (layer ``first``'s input) with :func:`run_layers` (safe in
        several threads, traceable to ONNX): causal below ``low``; from ``low`` on causal, or both ways when
        the spec is bidirectional. Outputs are read by the capture hooks (:meth:`read_pass`)."""
        count = len(self.body.layers)
        both_ways = range(self.layers_read[0], count) if self.spec.bidirectional else range(0)
        run_layers(self.body, hidden, attention_mask, range(first, count), both_ways)

    def _represent(self, attention_mask: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """One pass of the body's current layers, read by :meth:`read_pass`."""
        return self.read_pass(lambda: self.body(**inputs, attention_mask=attention_mask, use_cache=False),
                              attention_mask)

    def read_pass(self, run: Callable[[], object], attention_mask: torch.Tensor) -> torch.Tensor:
        """Run ``run`` (a pass through the read layers) until every LoRA A output read is captured; pool
        and join them: (B, dim) float32, unit length when the spec normalizes. An echoing spec pools over
        each row's second copy only."""
        captured = self._captured()
        read = second_copy_mask(attention_mask) if self.spec.echo else attention_mask
        captured.clear()
        try:
            with suppress(_AllRead):
                run()
            pool = masked_mean if self.spec.pooling == "mean" else last_token
            pooled = torch.cat([pool(captured[key].float(), read) for key in self._read_keys], dim=-1)
        finally:
            captured.clear()
        return nn.functional.normalize(pooled, dim=-1) if self.spec.normalize else pooled

    @torch.inference_mode()
    def embed_in(self, ids: Sequence[Sequence[int]], batches: list[list[int]], progress: str | None = None
                 ) -> torch.Tensor:
        """:meth:`TextEncoder.embed_in` in eval mode, without autograd."""
        self.eval()
        return super().embed_in(ids, batches, progress)

    def save_adapter(self, folder: Path, base_name: str | None = None) -> None:
        """Plain PEFT adapter files (``adapter_config.json``, ``adapter_model.safetensors``), recording
        ``base_name`` (a portable model name) instead of this machine's base folder when given."""
        save_plain_adapter(self.peft, folder, base_name)


def student_encoder(bundle: Bundle, dtype: torch.dtype | None = None, device: str = "cpu",
                    bases: BaseModels | None = None) -> LoraEncoder:
    """The bundle's student: its base model (provisioned name or folder) with its adapter, frozen, in eval
    mode on ``device`` in ``dtype`` (None: :func:`~flipkd.models.precision.compute_dtype`'s choice for
    ``device``); over ``bases``' shared weights when given."""
    encoder = LoraEncoder(resolve_model(bundle.base_model), bundle.encoder, adapter=bundle.folder,
                          dtype=dtype or compute_dtype("auto", device), device=device, bases=bases)
    return encoder.eval()
