"""The SAM2 graphs as TensorRT engines built on this device (``segzero-edge build``), no torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError
from ..manifest import Manifest, verify_files
from ..trt.cuda import gpu_info, import_tensorrt
from ..trt.engine import TrtEngine
from ..trt.profiles import find_build
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
        trt = import_tensorrt()
        gpu = gpu_info()
        engine_dir = Path(engine_dir)
        build = find_build(manifest, gpu.name, trt.__version__)
        if build is None or not {ENCODER, DECODER} <= set(build.engines):
            have = ", ".join(b.key for b in manifest.trt_builds) or "none"
            raise BackendUnavailableError(
                f"{engine_dir} has no SAM2 TensorRT engines for {gpu.name} with TensorRT {trt.__version__} "
                f"(builds: {have})",
                hint=f"run `segzero-edge build {engine_dir}` on this device",
            )
        verify_files(build.files, engine_dir, "size")
        self.build = build
        self._encoder = TrtEngine(engine_dir / build.engines[ENCODER])
        self._decoder = TrtEngine(engine_dir / build.engines[DECODER])
        _, _, hi = self._decoder.engine.get_tensor_profile_shape(POINT_COORDS, 0)
        self.max_objects, self.max_points = int(hi[0]), int(hi[1])
        self.device = f"cuda:{gpu.name} (TensorRT {trt.__version__})"
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
