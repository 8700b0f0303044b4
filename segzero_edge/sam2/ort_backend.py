"""The SAM2 graphs on ONNX Runtime (CPU, CUDA EP or TensorRT EP)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..manifest import GraphSpec
from ..ort import SessionFactory
from .contract import DECODER_OUTPUTS, ENCODER_INPUTS, FEATURES, NUM_OBJECTS, NUM_POINTS
from .pipeline import HostSide


class OrtSam2Backend(HostSide):
    """Runs ``sam2.image_encoder`` and ``sam2.mask_decoder`` with ONNX Runtime.

    Args:
        engine_dir: the engine directory.
        encoder, decoder: the graphs' manifest entries.
        sessions: the session factory (device and default threads).
        threads: intra-op threads of these sessions (default: the factory's).
    """

    name = "ort"

    def __init__(
        self,
        engine_dir: str | Path,
        encoder: GraphSpec,
        decoder: GraphSpec,
        sessions: SessionFactory,
        *,
        threads: int | None = None,
    ) -> None:
        trt = sessions.device.kind == "tensorrt"
        self._encoder = sessions.open_graph(engine_dir, encoder, threads=threads)
        self._decoder = sessions.open_graph(engine_dir, decoder, threads=threads)
        self.providers = tuple(self._encoder.get_providers())
        self.device = str(sessions.device)
        # The TensorRT provider builds for the manifest's profile; other providers take any N and P.
        dims = decoder.dynamic_dims if trt else {}
        self.max_objects = dims[NUM_OBJECTS][2] if NUM_OBJECTS in dims else None
        self.max_points = dims[NUM_POINTS][2] if NUM_POINTS in dims else None

    def encode(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """``image`` [1,3,S,S] float32 -> the three features by name."""
        (name,) = ENCODER_INPUTS
        return dict(zip(FEATURES, self._encoder.run(list(FEATURES), {name: image})))

    def decode(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Decoder inputs by name -> ``low_res_masks``, ``iou_scores``, ``object_score_logits``."""
        return dict(zip(DECODER_OUTPUTS, self._decoder.run(list(DECODER_OUTPUTS), dict(feeds))))
