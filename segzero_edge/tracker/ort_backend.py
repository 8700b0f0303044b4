"""The tracker graphs on ONNX Runtime (CPU, CUDA EP or TensorRT EP)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..manifest import GraphSpec
from ..ort import SessionFactory
from .contract import (
    ATTENTION_OUTPUTS,
    DECODER_OUTPUTS,
    ENCODER_OUTPUTS,
    MASK_DECODER,
    MEMORY_ATTENTION,
    MEMORY_ENCODER,
)


class OrtTrackerBackend:
    """Runs ``tracker.memory_attention``, ``tracker.mask_decoder`` and ``tracker.memory_encoder``.

    Args:
        engine_dir: the engine directory.
        specs: the three graphs' manifest entries by name (``contract.check_graphs``).
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

        self._attention = open_graph(MEMORY_ATTENTION)
        self._decoder = open_graph(MASK_DECODER)
        self._encoder = open_graph(MEMORY_ENCODER)
        self.device = str(sessions.device)

    def attend(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._attention.run(list(ATTENTION_OUTPUTS), dict(feeds))[0]

    def decode(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(DECODER_OUTPUTS, self._decoder.run(list(DECODER_OUTPUTS), dict(feeds))))

    def encode_memory(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._encoder.run(list(ENCODER_OUTPUTS), dict(feeds))[0]
