"""The reasoner graphs on ONNX Runtime: the vision tower, the embedding table and the decoder with its KV cache.

On CUDA the decoder runs with I/O binding: the KV cache (``present.*`` outputs) stays in GPU memory and is
bound straight back as the next step's ``past_key_values.*``; only the new embeddings go up and the
last-position logits come down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ManifestError
from ..manifest import GraphSpec
from ..ort import SessionFactory
from .contract import (
    ATTENTION_MASK,
    HIDDEN_STATES,
    IMAGE_EMBEDS,
    INPUTS_EMBEDS,
    LOGITS,
    PIXEL_VALUES,
    POSITION_IDS,
    ReasonerSettings,
    kv_names,
)


class DecoderRunner:
    """Runs the decoder graph step by step, owning the KV cache.

    Args:
        session: the decoder's ``InferenceSession``.
        num_layers, num_kv_heads, head_dim: cache geometry.
        io_binding: keep the cache as ``OrtValue``s bound between steps (default: on when the session runs
            on CUDA, where it keeps the cache on the GPU; it also works on CPU).
        device_index: the GPU of the session.
    """

    def __init__(
        self,
        session,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        *,
        io_binding: bool | None = None,
        device_index: int = 0,
    ):
        self.session = session
        self.kv_shape = (1, num_kv_heads, 1, head_dim)
        self.device = "cuda" if "CUDAExecutionProvider" in session.get_providers() else "cpu"
        self.device_index = device_index
        self.io_binding = (self.device == "cuda") if io_binding is None else bool(io_binding)
        self.past_names, self.present_names = kv_names(num_layers)
        self.calls = 0
        self.reset()

    def reset(self) -> None:
        """Forget the cache (a new prompt follows).

        The cache starts with one zero slot that ``attention_mask`` hides (0), so that no graph dimension is
        ever empty (TensorRT optimisation profiles need ``past >= 1``); position ids do not count it.
        """
        self._past: list[Any] = [np.zeros(self.kv_shape, np.float32) for _ in self.past_names]
        self.length = 1

    def __call__(self, inputs_embeds: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """Feed ``inputs_embeds [1, n, hidden]`` at ``position_ids [3, 1, n]``; returns last logits ``[vocab]``."""
        n = inputs_embeds.shape[1]
        total = self.length + n
        mask = np.ones((1, total), np.int64)
        mask[0, 0] = 0  # the placeholder slot of reset()
        embeds = np.ascontiguousarray(inputs_embeds, dtype=np.float32)
        positions = np.ascontiguousarray(position_ids, dtype=np.int64)
        if self.io_binding:
            logits = self._run_bound(embeds, mask, positions)
        else:
            feeds = {INPUTS_EMBEDS: embeds, ATTENTION_MASK: mask, POSITION_IDS: positions}
            feeds.update(zip(self.past_names, self._past))
            out = self.session.run([LOGITS, *self.present_names], feeds)
            logits, self._past = out[0], out[1:]
        self.length = total
        self.calls += 1
        return logits[0]

    def hidden_states(
        self, inputs_embeds: np.ndarray, position_ids: np.ndarray, attention_mask: np.ndarray
    ) -> np.ndarray:
        """A fresh prefill that leaves the cache alone: post-norm hidden states ``[n, hidden]`` of
        ``inputs_embeds [1, n, hidden]`` at ``position_ids [3, 1, n]``, keys masked by ``attention_mask [n]``
        (1 = attend). The graph must have been exported with the ``hidden_states`` output."""
        n = inputs_embeds.shape[1]
        mask = np.concatenate([np.zeros(1, np.int64), np.asarray(attention_mask, np.int64).reshape(n)])[None]
        feeds = {
            INPUTS_EMBEDS: np.ascontiguousarray(inputs_embeds, dtype=np.float32),
            ATTENTION_MASK: mask,
            POSITION_IDS: np.ascontiguousarray(position_ids, dtype=np.int64),
        }
        feeds.update((name, np.zeros(self.kv_shape, np.float32)) for name in self.past_names)
        self.calls += 1
        return self.session.run([HIDDEN_STATES], feeds)[0][0]

    def _run_bound(self, embeds: np.ndarray, mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
        binding = self.session.io_binding()
        binding.bind_cpu_input(INPUTS_EMBEDS, embeds)
        binding.bind_cpu_input(ATTENTION_MASK, mask)
        binding.bind_cpu_input(POSITION_IDS, positions)
        for name, value in zip(self.past_names, self._past):
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        binding.bind_output(LOGITS, "cpu")
        for name in self.present_names:
            binding.bind_output(name, self.device, self.device_index if self.device == "cuda" else 0)
        self.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        self._past = list(outputs[1:])
        return outputs[0].numpy()


class OrtReasonerBackend:
    """The ``ReasonerBackend`` of ONNX Runtime (CPU, or CUDA with I/O binding).

    Args:
        engine_dir: the engine directory.
        settings: its reasoner settings.
        vision, decoder: the graphs' manifest entries; None leaves that session unopened (``vision``/``step``
            are then unavailable): the exporter's validation opens one at a time to bound its memory.
        sessions: the session factory (device, threads).
        io_binding: force I/O binding on or off (default: on for CUDA).
    """

    name = "ort"

    def __init__(
        self,
        engine_dir: str | Path,
        settings: ReasonerSettings,
        vision: GraphSpec | None,
        decoder: GraphSpec | None,
        sessions: SessionFactory,
        *,
        io_binding: bool | None = None,
    ) -> None:
        root = Path(engine_dir)
        emb = settings.embeddings
        self.embeddings = np.load(root / emb.file, mmap_mode="r")
        if tuple(self.embeddings.shape) != emb.shape:
            raise ManifestError(f"{emb.file} has shape {self.embeddings.shape}, the manifest says {list(emb.shape)}")
        self.vision_session = sessions.create(root / vision.file) if vision is not None else None
        self.decoder: DecoderRunner | None = None
        if decoder is not None:
            text = settings.text
            self.decoder = DecoderRunner(
                sessions.create(root / decoder.file),
                text.num_layers,
                text.num_kv_heads,
                text.head_dim,
                io_binding=io_binding,
                device_index=sessions.device.index,
            )
        self.device = str(sessions.device)
        opened = self.decoder.session if self.decoder is not None else self.vision_session
        self.providers = tuple(opened.get_providers()) if opened is not None else ()

    def vision(self, pixel_values: np.ndarray) -> np.ndarray:
        """``pixel_values [num_patches, 3*T*P*P]`` -> ``image_embeds [num_image_tokens, hidden]``."""
        return self.vision_session.run([IMAGE_EMBEDS], {PIXEL_VALUES: pixel_values})[0]

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """Token embeddings ``[len(ids), hidden]`` float32 from the table."""
        return np.asarray(self.embeddings[np.asarray(ids, dtype=np.int64)], dtype=np.float32)

    def reset(self) -> None:
        self.decoder.reset()

    def step(self, inputs_embeds: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """Feed ``[1, n, hidden]`` at ``[3, 1, n]``; the last position's logits ``[vocab]``."""
        return self.decoder(inputs_embeds, position_ids)

    def hidden(self, inputs_embeds: np.ndarray, position_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Post-norm hidden states ``[n, hidden]`` of a fresh prefill (``DecoderRunner.hidden_states``)."""
        return self.decoder.hidden_states(inputs_embeds, position_ids, attention_mask)
