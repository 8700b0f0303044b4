"""How much memory ``export reasoner`` needs, estimated from the checkpoint's header before anything is
written, and the refusal when the machine does not have it.

Each stage's peak resident memory is modelled from the checkpoint's tensor sizes (float32 bytes of the
token table, the LM head, the largest decoder layer and the vision tower) with factors fitted to the
per-phase peaks that ``benchmarks/bench_export_memory.py`` measured on the 3B and 7B shapes
(``benchmarks/results/export_memory_*.md``); the estimate is meant to err high by up to ~15%.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from segzero_edge.errors import ExportError

from .checkpoint import WeightReader
from .reference_stream import reference_memory_bytes

log = logging.getLogger(__name__)

GB = 1e9
#: resident memory of the process before the export allocates anything (Python, torch, transformers, ORT)
BASELINE = 0.6 * GB
#: writing the decoder: one layer and the LM head in float32 with their quantization's temporaries
#: (7B, 1 layer: 4.9 GB anonymous RSS measured for 3.1 GB of float32 weights)
DECODER_FACTOR = 1.6
#: the vision tower's export (TorchScript trace, the ONNX proto, consolidation) over its float32 weights
#: (7B: 8.8 GB measured for 2.7 GB)
VISION_EXPORT_FACTOR = 3.4
#: the engine's vision session over its float32 weights (working memory of 3,600 patches included; 7B:
#: 6.0 GB RSS measured for the phase at 1-3 layers, token table included)
ORT_VISION_FACTOR = 1.7
#: the engine's decoder session over its graph's stored weights (KV cache and logits included; likely ORT's
#: prepacked MatMulNBits copies next to the initializers, not profiled; 7B int4, 28 layers: 8.6 GB RSS
#: measured for the phase with 3.76 GB stored and the 1.09 GB token table, i.e. 1.84, rounded up to err high)
ORT_DECODER_FACTOR = 2.0
#: the streamed reference over ``reference_memory_bytes`` (allocator slack; 7B: 8.1 GB RSS measured in the
#: dequantized phase)
REFERENCE_FACTOR = 1.45


def stored_bytes(precision: str, block_size: int) -> float:
    """Bytes per weight of a decoder linear layer as the graph stores it (a float32 scale per block)."""
    return {"int4": 0.5 + 4 / block_size, "int8": 1 + 4 / block_size, "fp16": 2.0, "fp32": 4.0}[precision]


class ExportMemoryError(ExportError):
    """The export would need more memory than the machine has available."""


@dataclass(frozen=True)
class MemoryPlan:
    """Estimated peak resident bytes of each export stage (``stages``) and what is available."""

    stages: dict[str, int]
    available: int | None

    @property
    def peak(self) -> tuple[str, int]:
        name = max(self.stages, key=self.stages.__getitem__)
        return name, self.stages[name]

    def without_validation(self) -> int:
        return max(v for k, v in self.stages.items() if not k.startswith("validate"))

    def describe(self) -> str:
        return ", ".join(f"{k} {v / GB:.1f} GB" for k, v in self.stages.items())


def available_memory() -> int | None:
    """Bytes the system can give a new process without swapping (``MemAvailable`` of ``/proc/meminfo``,
    capped by a cgroup v2 ``memory.max``); None where neither is readable (not Linux)."""
    found = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
    except OSError:
        return None
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            cap = int(limit) - used
            found = cap if found is None else min(found, cap)
    except (OSError, ValueError):
        pass
    return found


def plan_export_memory(
    reader: WeightReader, config: Any, cfg: Any, precision: Any, num_patches: int = 3600
) -> MemoryPlan:
    """The per-stage estimate for exporting ``reader``'s checkpoint with ``cfg`` (``ReasonerExportConfig``),
    ``precision`` (its ``DecoderPrecision``) and ``num_patches`` vision patches (3,600 at 840x840)."""
    t = config.text_config
    names = list(reader.names())

    def numel(name: str) -> int:
        return int(np.prod(reader.shape(name)))

    table = numel("lm.embed_tokens.weight")
    head = table if t.tie_word_embeddings or "lm_head.weight" not in reader else numel("lm_head.weight")
    vision = sum(numel(n) for n in names if n.startswith("visual."))
    per_layer: dict[str, int] = {}
    for n in names:
        if n.startswith("lm.layers."):
            key = n.split(".")[2]
            per_layer[key] = per_layer.get(key, 0) + numel(n)
    layer = max(per_layer.values(), default=0)
    body = sum(per_layer.values())
    emb_bytes = table * (4 if cfg.embedding_dtype() == "float32" else 2)
    head_stored = head * stored_bytes(precision.lm_head, cfg.block_size)
    decoder_file = body * stored_bytes(precision.body, cfg.block_size) + head_stored
    stages = {
        "embeddings": BASELINE + 8192 * t.hidden_size * 8,  # one block of rows, read and cast
        "decoder": BASELINE + DECODER_FACTOR * (layer + head) * 4,
        "vision": BASELINE + VISION_EXPORT_FACTOR * vision * 4,
    }
    if cfg.validate != "none":
        # the engine's sessions one at a time (vision, then decoder; the twin's 8-bit layers as fp32, and no
        # LM head) next to the token table
        eightbit = layer * 4 * len(precision.int8_layers)
        sessions = max(ORT_VISION_FACTOR * vision * 4, ORT_DECODER_FACTOR * decoder_file + eightbit)
        stages["validate_onnxruntime"] = BASELINE + sessions + emb_bytes
        # + the engine's LM head as stored (read whole, then dequantized one block of rows at a time)
        reference = reference_memory_bytes(reader, config, num_patches=num_patches)
        stages["validate_transformers"] = BASELINE + REFERENCE_FACTOR * reference + 2 * head_stored
    return MemoryPlan({k: int(v) for k, v in stages.items()}, available_memory())


def check_memory(plan: MemoryPlan, cfg: Any) -> None:
    """Refuse (``ExportMemoryError``) when the plan's peak exceeds the available memory, naming the stage,
    both numbers and an option that fits; log the plan either way."""
    stage, peak = plan.peak
    log.info(
        "estimated peak memory %.1f GB (%s); available %s",
        peak / GB,
        plan.describe(),
        "unknown" if plan.available is None else f"{plan.available / GB:.1f} GB",
    )
    if plan.available is None or peak <= plan.available:
        return
    if stage.startswith("validate") and plan.without_validation() <= plan.available:
        hint = (
            f"--validate none fits ({plan.without_validation() / GB:.1f} GB; validate the engine later on a "
            "larger machine), or free memory"
        )
    else:
        hint = (
            f"writing the engine alone needs {plan.without_validation() / GB:.1f} GB: free memory or use a "
            "machine with more (README: export requirements)"
        )
    raise ExportMemoryError(
        f"exporting {cfg.weights} with --validate {cfg.validate} needs about {peak / GB:.1f} GB at its peak "
        f"({stage}), and this machine has {plan.available / GB:.1f} GB available",
        hint=hint + "; --no-memory-check skips this check",
    )
