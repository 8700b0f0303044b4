"""The SAM2 graphs as TensorRT engines built on this device (``segzero-edge build``), no torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..manifest import Manifest
from ..trt.engine import open_build
from .contract import DECODER, DECODER_OUTPUTS, ENCODER, ENCODER_INPUTS, FEATURES, POINT_COORDS
from .pipeline import HostSide


class TrtSam2Backend(HostSide):
    """Runs the engines the manifest lists for this GPU and TensorRT version.

    Raises:
        BackendUnavailableError: tensorrt / cuda-python / GPU missing, or no build for this GPU.
        EngineFileError: an engine file is missing or truncated.
        EngineIncompatibleError: an engine cannot be deserialized by this TensorRT.
    """

    name = "trt"

    def __init__(self, engine_dir: str | Path, manifest: Manifest) -> None:
        self.build, engines, self.device = open_build(engine_dir, manifest, (ENCODER, DECODER), "SAM2")
        self._encoder, self._decoder = engines[ENCODER], engines[DECODER]
        _, _, hi = self._decoder.engine.get_tensor_profile_shape(POINT_COORDS, 0)
        self.max_objects, self.max_points = int(hi[0]), int(hi[1])
        self.providers = ("TensorRT",)

    def encode(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """``image`` [1,3,S,S] float32 -> the three features by name."""
        (name,) = ENCODER_INPUTS
        out = self._encoder.run({name: image})
        return {name: out[name] for name in FEATURES}

    def decode(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Decoder inputs by name -> ``low_res_masks``, ``iou_scores``, ``object_score_logits``."""
        out = self._decoder.run(feeds)
        return {name: out[name] for name in DECODER_OUTPUTS}
