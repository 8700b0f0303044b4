"""The SAM2 graphs on ONNX Runtime (CPU, CUDA EP or TensorRT EP)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..manifest import GraphSpec
from ..ort import create_session
from ..trt.profiles import profile_shapes
from .contract import DECODER_OUTPUTS, FEATURES


class OrtSam2Backend:
    """Runs ``sam2.image_encoder`` and ``sam2.mask_decoder`` with ONNX Runtime.

    Args:
        engine_dir: the engine directory.
        encoder, decoder: the graphs' manifest entries.
        device: ``"auto" | "cpu" | "cuda" | "tensorrt"`` (see ``segzero_edge.ort``).
        threads: intra-op threads per session (None: one per core).
    """

    name = "ort"

    def __init__(
        self,
        engine_dir: str | Path,
        encoder: GraphSpec,
        decoder: GraphSpec,
        *,
        device: str = "auto",
        threads: int | None = None,
    ) -> None:
        engine_dir = Path(engine_dir)
        cache = engine_dir / "trt" / "ort-tensorrt-ep"
        self._encoder = create_session(
            engine_dir / encoder.file,
            device=device,
            threads=threads,
            trt_cache_dir=cache if device == "tensorrt" else None,
        )
        self._decoder = create_session(
            engine_dir / decoder.file,
            device=device,
            threads=threads,
            trt_cache_dir=cache if device == "tensorrt" else None,
            trt_profiles=profile_shapes(decoder) if device == "tensorrt" else None,
        )
        self.providers = tuple(self._encoder.get_providers())
        self.device = {"TensorrtExecutionProvider": "tensorrt", "CUDAExecutionProvider": "cuda"}.get(
            self.providers[0], "cpu"
        )
        # The TensorRT provider builds for the manifest's profile; other providers take any N and P.
        dims = decoder.dynamic_dims if self.device == "tensorrt" else {}
        self.max_objects = dims["num_objects"][2] if "num_objects" in dims else None
        self.max_points = dims["num_points"][2] if "num_points" in dims else None

    def encode(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """``image`` [1,3,S,S] float32 -> the three features by name."""
        return dict(zip(FEATURES, self._encoder.run(list(FEATURES), {"image": image})))

    def decode(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Decoder inputs by name -> ``low_res_masks``, ``iou_scores``, ``object_score_logits``."""
        return dict(zip(DECODER_OUTPUTS, self._decoder.run(list(DECODER_OUTPUTS), feeds)))
