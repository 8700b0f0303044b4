"""The tracker graphs on ONNX Runtime (CPU, CUDA EP or TensorRT EP)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import EngineIncompatibleError
from ..manifest import GraphSpec
from ..ort import SessionFactory
from ..sam2.contract import ENCODER_INPUTS as IMAGE_INPUTS
from ..sam2.contract import FEATURES
from .contract import (
    ATTENTION_OUTPUTS,
    DECODER_OUTPUTS,
    ENCODER_OUTPUTS,
    IMAGE_ENCODER,
    MASK_DECODER,
    MASK_PROMPT,
    MASK_PROMPT_OUTPUTS,
    MEMORY_ATTENTION,
    MEMORY_ENCODER,
    missing_mask_prompt,
)


class OrtTrackerBackend:
    """Runs ``tracker.memory_attention``, ``tracker.mask_decoder`` and ``tracker.memory_encoder``, and
    ``tracker.mask_prompt`` and ``tracker.image_encoder`` where the engine has them (opened on first use).

    Args:
        engine_dir: the engine directory.
        specs: the graphs' manifest entries by name (``contract.check_graphs``).
        sessions: the session factory (device and default threads).
        threads: intra-op threads of these sessions (default: the factory's).
    """

    name = "ort"

    def __init__(
        self,
        engine_dir: str | Path,
        specs: Mapping[str, GraphSpec],
        sessions: SessionFactory,
        *,
        threads: int | None = None,
    ) -> None:
        def open_graph(name: str):
            # Three sessions run in turn per frame: no spin-waiting between them (SessionFactory.create).
            return sessions.open_graph(engine_dir, specs[name], threads=threads, spin=False)

        self._open = open_graph
        self._has_mask_prompt = MASK_PROMPT in specs
        self._attention = open_graph(MEMORY_ATTENTION)
        self._decoder = open_graph(MASK_DECODER)
        self._encoder = open_graph(MEMORY_ENCODER)
        self._mask_prompt = self._image_encoder = None
        self._has_image_encoder = IMAGE_ENCODER in specs
        self.device = str(sessions.device)

    def attend(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._attention.run(list(ATTENTION_OUTPUTS), dict(feeds))[0]

    def decode(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(DECODER_OUTPUTS, self._decoder.run(list(DECODER_OUTPUTS), dict(feeds))))

    def encode_memory(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._encoder.run(list(ENCODER_OUTPUTS), dict(feeds))[0]

    def mask_pointer(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        if not self._has_mask_prompt:
            raise missing_mask_prompt()
        if self._mask_prompt is None:
            self._mask_prompt = self._open(MASK_PROMPT)
        return self._mask_prompt.run(list(MASK_PROMPT_OUTPUTS), dict(feeds))[0]

    def encode_image(self, image: np.ndarray) -> dict[str, np.ndarray]:
        if not self._has_image_encoder:
            raise EngineIncompatibleError(
                "this tracker has no image encoder of its own; encode with the sam2 component"
            )
        if self._image_encoder is None:
            self._image_encoder = self._open(IMAGE_ENCODER)
        return dict(zip(FEATURES, self._image_encoder.run(list(FEATURES), {IMAGE_INPUTS[0]: image})))
