"""One model built at a time per process.

transformers sets torch's process-wide default dtype while it instantiates a model and restores the one
it found afterwards. Two models built at once in two threads (the service loads a bf16 student beside an
fp32 teacher, whose ONNX export also traces under the default dtype) interleave those set/restore pairs
and can leave the default at bf16: the teacher's graph then gets bf16 nodes onnxruntime cannot run and
the student float32 tensors where bf16 ones are expected. Every model instantiation and teacher export
holds :data:`MODEL_BUILD_LOCK` (reentrant: an export builds its models inside it).
"""

from __future__ import annotations

import threading

MODEL_BUILD_LOCK = threading.RLock()
