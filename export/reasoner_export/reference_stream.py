"""The transformers reference of the validation, teacher-forced and run one decoder layer at a time.

Validation scores the sequences the engine generated, so the reference never generates: it computes, for
each pair, the logits predicting every token of every generation in one forward pass. The prompt and the
pair's generations are packed into one sequence (the prompt once; each generation attends to the prompt and
to itself, never to another generation; each starts at the position right after the prompt), so the prompt,
900 image tokens for an 840x840 input, is run once per pair instead of once per generation.

The language model runs layer-major: one ``Qwen2_5_VLDecoderLayer`` is filled with layer ``i``'s float32
weights, every pair's hidden states go through it, then it is refilled with layer ``i + 1``'s. In memory at
once: the vision tower while it runs (then freed), one decoder layer, the packed hidden states (``[tokens,
hidden]`` per pair), the embedding rows the prompts use, and, after the last layer, the LM head one block of
rows at a time. For the 7B shape the weights in memory peak at the vision tower's 2.7 GB, where the whole
fp32 model would take 33 GB (``reference_memory_bytes``).

The modules are transformers' own (decoder layer, RMSNorm, M-RoPE rotary embedding, vision tower,
``get_rope_index``); this file adds the loop over layers and the packing mask, and a test checks its logits
against ``Qwen2_5_VLForConditionalGeneration`` on the same sequences. The weights come from a
``WeightSource``: the checkpoint's (``CheckpointWeights``) or the engine's dequantized ones
(``EngineWeights``). With CUDA torch the reference runs on the GPU.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from segzero_edge.manifest import Manifest
from segzero_edge.reasoner.contract import COMPONENT, DECODER, ReasonerSettings

from .checkpoint import WeightReader
from .dequantized import dequantized_head_blocks, dequantized_linears
from .memory import release_memory
from .wrappers import load_vision_tower

EMBED = "lm.embed_tokens.weight"
#: LM head rows per block: 16,384 x 3,584 float32 is 235 MB
HEAD = "lm_head.weight"
HEAD_ROWS = 16384
_LINEAR = re.compile(r"^layers\.(\d+)\.")


class WeightSource(Protocol):
    """float32 weights by canonical name (``lm.layers.0.mlp.up_proj.weight``, ``lm.norm.weight``), rows of
    the token embedding table, and the LM head (``[vocab, hidden]``) in blocks of rows."""

    def get(self, name: str) -> np.ndarray: ...

    def embedding_rows(self, ids: np.ndarray) -> np.ndarray: ...

    def head_blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]: ...


class CheckpointWeights:
    """The checkpoint's weights (bfloat16/float16 widened to float32), read one tensor at a time."""

    def __init__(self, reader: WeightReader, tied: bool):
        self.reader, self.tied = reader, tied

    def get(self, name: str) -> np.ndarray:
        return self.reader.get(name)

    def embedding_rows(self, ids: np.ndarray) -> np.ndarray:
        return self.reader.rows(EMBED, ids)

    def head_blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        name = EMBED if self.tied or HEAD not in self.reader else HEAD
        total = self.reader.shape(name)[0]
        for start in range(0, total, rows):
            yield start, self.reader.row_block(name, start, start + rows)


class EngineWeights:
    """The engine's weights as the graphs use them: every linear layer of the decoder and the LM head
    dequantized from ``decoder.onnx.data`` (read in graph order, one layer's at a time), the embedding rows
    from ``embed_tokens.npy``; norms and biases, which the export keeps in float32, from the checkpoint."""

    def __init__(self, reader: WeightReader, engine_root: Path, manifest: Manifest):
        self.reader = reader
        self.root, self.graph_file = Path(engine_root), manifest.graph(DECODER).file
        settings = ReasonerSettings.from_mapping(manifest.component(COMPONENT))
        self._table = np.load(self.root / settings.embeddings.file, mmap_mode="r")
        self._linears = dequantized_linears(self.root, self.graph_file)
        self._pending: dict[str, np.ndarray] = {}
        self.replaced = 0

    def get(self, name: str) -> np.ndarray:
        linear = _linear_name(name)
        if linear is None:
            return self.reader.get(name)
        while linear not in self._pending:
            found = next(self._linears, None)
            if found is None:
                raise KeyError(f"the engine's decoder graph has no linear layer {linear!r}")
            self._pending[found[0]] = found[1]
        self.replaced += 1
        return self._pending.pop(linear)

    def embedding_rows(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray(self._table[np.asarray(ids, dtype=np.int64)], dtype=np.float32)

    def head_blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        self.replaced += 1
        yield from dequantized_head_blocks(self.root, self.graph_file, rows)


def _linear_name(name: str) -> str | None:
    """``lm.layers.3.mlp.up_proj.weight`` -> ``layers.3.mlp.up_proj`` (the decoder graph's node prefix)."""
    if name.startswith("lm.layers.") and name.endswith("_proj.weight"):
        return name[len("lm.") : -len(".weight")]
    return None


@dataclass
class PackedPair:
    """One pair's prompt (the transformers processor's tensors, numpy) and the generations to score."""

    input_ids: np.ndarray  # [P] int64
    mm_token_type_ids: np.ndarray  # [P] int
    pixel_values: np.ndarray  # [patches, patch_dim] float32
    image_grid_thw: np.ndarray  # [1, 3] int64
    generations: list[list[int]]

    @classmethod
    def from_processor(cls, inputs: Any, generations: list[list[int]]) -> PackedPair:
        """From the transformers processor's output for one request (batch of one, torch tensors)."""
        return cls(
            input_ids=inputs.input_ids[0].numpy(),
            mm_token_type_ids=inputs.mm_token_type_ids[0].numpy(),
            pixel_values=inputs.pixel_values.numpy(),
            image_grid_thw=inputs.image_grid_thw.numpy(),
            generations=generations,
        )


def reference_device(device: str = "auto") -> str:
    """``"cuda"`` when torch sees a GPU and ``device`` is ``"auto"``, else ``device`` (``"cpu"`` for auto)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from segzero_edge.errors import BackendUnavailableError

        raise BackendUnavailableError(
            "--reference-device cuda: this torch sees no CUDA GPU", hint="use --reference-device auto or cpu"
        )
    return device


def reference_memory_bytes(reader: WeightReader, config: Any, tokens: int = 1200, num_patches: int = 3600) -> int:
    """Bytes of the streamed reference's largest stage for a checkpoint, from its header: the vision tower
    (float32 weights, and the attention scores of its full-attention blocks over ``num_patches`` patches, twice
    for softmax's output), or one decoder layer plus a block of LM head rows with the activations of a packed
    pair of ``tokens`` tokens (hidden states, the MLP's three intermediates, attention scores)."""
    names = list(reader.names())

    def numel(name: str) -> int:
        return int(np.prod(reader.shape(name)))

    v, t = config.vision_config, config.text_config
    vision = sum(numel(n) for n in names if n.startswith("visual."))
    vision += 2 * v.num_heads * num_patches * num_patches + 8 * num_patches * v.hidden_size
    layers: dict[str, int] = {}
    for n in names:
        if n.startswith("lm.layers."):
            key = n.split(".")[2]
            layers[key] = layers.get(key, 0) + numel(n)
    activations = tokens * (4 * t.hidden_size + 3 * t.intermediate_size) + t.num_attention_heads * tokens * tokens
    text = max(layers.values(), default=0) + HEAD_ROWS * t.hidden_size + activations
    return 4 * max(vision, text)


class StreamedReference:
    """transformers' Qwen2.5-VL run teacher-forced over packed pairs, one decoder layer at a time.

    Args:
        config: the checkpoint's ``Qwen2_5_VLConfig``.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``.
    """

    def __init__(self, config: Any, device: str = "auto"):
        import torch
        from transformers.initialization import no_init_weights
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
            Qwen2_5_VLDecoderLayer,
            Qwen2_5_VLModel,
            Qwen2_5_VLRMSNorm,
            Qwen2_5_VLRotaryEmbedding,
        )

        self.config = config
        self.device = torch.device(reference_device(device))
        text = copy.deepcopy(config.text_config)
        text._attn_implementation = "sdpa"
        self.text = text
        with no_init_weights(), torch.device(self.device):
            self.layer = Qwen2_5_VLDecoderLayer(text, layer_idx=0).float().eval()
            self.norm = Qwen2_5_VLRMSNorm(text.hidden_size, eps=text.rms_norm_eps).float().eval()
        self.rotary = Qwen2_5_VLRotaryEmbedding(config=text).to(self.device)
        with torch.device("meta"):  # only for get_rope_index, which reads the config
            self._positions_owner = Qwen2_5_VLModel._from_config(config)

    def vision(self, reader: WeightReader, pixels: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """The vision tower's merged embeddings ``[image_tokens, hidden]`` for each ``(pixel_values,
        image_grid_thw)``; the tower is built from ``reader`` and freed before returning."""
        import torch

        visual = load_vision_tower(self.config, reader).to(self.device)
        out = []
        with torch.no_grad():
            for values, grid in pixels:
                res = visual(self._tensor(values), grid_thw=self._tensor(grid, torch.long))
                out.append(res.pooler_output.float().cpu().numpy())
        del visual
        release_memory()
        return out

    def positions(self, pair: PackedPair) -> tuple[np.ndarray, int]:
        """transformers' M-RoPE position ids ``[3, P]`` of the prompt and its ``rope_delta`` (a generated token
        at index ``P + j`` has position ``P + j + rope_delta`` on all three rows)."""
        import torch

        ids = torch.from_numpy(np.asarray(pair.input_ids, np.int64))[None]
        types = torch.from_numpy(np.asarray(pair.mm_token_type_ids, np.int64))[None]
        grid = torch.from_numpy(np.asarray(pair.image_grid_thw, np.int64))
        pos, delta = self._positions_owner.get_rope_index(ids, mm_token_type_ids=types, image_grid_thw=grid)
        return pos[:, 0].numpy(), int(delta.reshape(-1)[0])

    def logits(
        self,
        pairs: Sequence[PackedPair],
        vision: Sequence[np.ndarray],
        weights: WeightSource,
        progress: Callable[[Iterator[int]], Iterator[int]] = lambda it: it,
        also: Sequence[np.ndarray] = (),
    ) -> tuple[list[list[np.ndarray]], list[np.ndarray]]:
        """For each pair and each of its generations ``g``, the logits ``[len(g), vocab]`` float32: row ``j``
        predicts ``g[j]`` from the prompt and ``g[:j]`` (teacher forcing). ``vision``: each pair's image
        embeddings (``vision()``). ``progress`` wraps the loop over layers (a progress bar). ``also``: other
        post-norm hidden states ``[n, hidden]`` to project with the same LM head; their logits come second."""
        import torch

        states = []
        image_token = int(self.config.image_token_id)
        for pair, embeds in zip(pairs, vision):
            packed_ids, positions, mask, scored = _pack(pair, *self.positions(pair))
            x = weights.embedding_rows(packed_ids)
            x[packed_ids == image_token] = embeds
            pos = self._tensor(positions, torch.long)[:, None]
            hidden = self._tensor(x)[None]
            states.append((hidden, self.rotary(hidden, pos), self._tensor(mask)[None, None], scored))
        params = dict(self.layer.named_parameters())
        with torch.no_grad():
            for i in progress(iter(range(self.text.num_hidden_layers))):
                for key, param in params.items():
                    param.copy_(torch.from_numpy(weights.get(f"lm.layers.{i}.{key}")))
                for k, (hidden, rope, mask, scored) in enumerate(states):
                    states[k] = (self.layer(hidden, attention_mask=mask, position_embeddings=rope), rope, mask, scored)
            self.norm.weight.copy_(torch.from_numpy(weights.get("lm.norm.weight")))
            finals = [self.norm(h[0, torch.from_numpy(np.concatenate(sc)).to(self.device)]) for h, _, _, sc in states]
            splits = [np.cumsum([len(s) for s in sc])[:-1] for *_, sc in states]
            del states
            inputs = finals + [self._tensor(h) for h in also]
            vocab = int(self.text.vocab_size)
            logits = [np.empty((x.shape[0], vocab), np.float32) for x in inputs]
            for start, block in weights.head_blocks(HEAD_ROWS):
                w = self._tensor(block)
                for x, dest in zip(inputs, logits):
                    dest[:, start : start + w.shape[0]] = (x @ w.T).float().cpu().numpy()
                del w, block
            out = [np.split(full, cut) for full, cut in zip(logits[: len(finals)], splits)]
            extra = logits[len(finals) :]
            del inputs, finals
        release_memory()
        return out, extra

    def _tensor(self, array: np.ndarray, dtype: Any = None) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device, dtype=dtype or torch.float32)


def _pack(pair: PackedPair, prompt_positions: np.ndarray, delta: int) -> tuple:
    """``(ids [S], positions [3, S], additive mask [S, S] float32, scored)`` of a pair packed as the prompt
    followed by each generation without its last token; ``scored[g]`` are the packed indices whose outputs
    predict generation ``g``'s tokens (the prompt's last index, then the generation's own)."""
    prompt = np.asarray(pair.input_ids, np.int64)
    n = len(prompt)
    ids, positions, segments, scored = [prompt], [prompt_positions], [], []
    start = n
    for gen in pair.generations:
        body = np.asarray(gen[:-1], np.int64)
        ids.append(body)
        positions.append(np.broadcast_to(np.arange(n, n + len(body)) + delta, (3, len(body))))
        segments.append((start, start + len(body)))
        scored.append(np.concatenate([[n - 1], np.arange(start, start + len(body))]).astype(np.int64))
        start += len(body)
    total = start
    allowed = np.tril(np.ones((total, total), bool))
    for a, (s0, e0) in enumerate(segments):  # generations never see each other
        for b, (s1, e1) in enumerate(segments):
            if a != b:
                allowed[s0:e0, s1:e1] = False
    mask = np.where(allowed, np.float32(0), np.float32(-np.inf)).astype(np.float32)
    return np.concatenate(ids), np.concatenate(positions, axis=1), mask, scored
