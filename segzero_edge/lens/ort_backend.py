"""LENS's context graph and fine-tuned SAM2 mask decoder on ONNX Runtime (CPU, CUDA EP or TensorRT EP)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..manifest import GraphSpec
from ..ort import SessionFactory
from .contract import MASK_DECODER_OUTPUTS, QUERY_HIDDEN, SPARSE_PROMPT


class OrtLensBackend:
    """Runs ``lens.context*`` and ``lens.mask_decoder`` with ONNX Runtime.

    Args:
        engine_dir: the engine directory.
        context, decoder: the graphs' manifest entries.
        sessions: the session factory (device and threads).
    """

    name = "ort"

    def __init__(
        self, engine_dir: str | Path, context: GraphSpec, decoder: GraphSpec, sessions: SessionFactory
    ) -> None:
        self._context = sessions.open_graph(engine_dir, context)
        self._decoder = sessions.open_graph(engine_dir, decoder)
        self.device = str(sessions.device)

    def context(self, query_hidden: np.ndarray) -> np.ndarray:
        return self._context.run([SPARSE_PROMPT], {QUERY_HIDDEN: query_hidden})[0]

    def decode(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(MASK_DECODER_OUTPUTS, self._decoder.run(list(MASK_DECODER_OUTPUTS), dict(feeds))))
