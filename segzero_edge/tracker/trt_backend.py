"""The tracker graphs as TensorRT engines built on this device (``segzero-edge build``), no torch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError
from ..manifest import Manifest, verify_files
from ..trt.cuda import gpu_info, import_tensorrt
from ..trt.engine import TrtEngine
from ..trt.profiles import find_build
from .contract import (
    ATTENTION_OUTPUTS,
    DECODER_OUTPUTS,
    ENCODER_OUTPUTS,
    MASK_DECODER,
    MEMORY_ATTENTION,
    MEMORY_ENCODER,
)

GRAPHS = (MEMORY_ATTENTION, MASK_DECODER, MEMORY_ENCODER)


def has_trt_build(manifest: Manifest) -> bool:
    """True when some TensorRT build of the manifest holds all three tracker engines."""
    return any(set(GRAPHS) <= set(b.engines) for b in manifest.trt_builds)


class TrtTrackerBackend:
    """Runs the three tracker engines the manifest lists for this GPU and TensorRT version.

    Raises:
        BackendUnavailableError: tensorrt / cuda-python / GPU missing, or no tracker engines for this GPU.
        EngineFileError: an engine file is missing or truncated.
        EngineIncompatibleError: an engine cannot be deserialized by this TensorRT.
    """

    name = "trt"

    def __init__(self, engine_dir: str | Path, manifest: Manifest) -> None:
        trt = import_tensorrt()
        gpu = gpu_info()
        engine_dir = Path(engine_dir)
        build = find_build(manifest, gpu.name, trt.__version__)
        if build is None or not set(GRAPHS) <= set(build.engines):
            have = ", ".join(b.key for b in manifest.trt_builds) or "none"
            raise BackendUnavailableError(
                f"{engine_dir} has no tracker TensorRT engines for {gpu.name} with TensorRT {trt.__version__} "
                f"(builds: {have})",
                hint=f"run `segzero-edge build {engine_dir}` on this device",
            )
        verify_files(build.files, engine_dir, "size")
        self.build = build
        self._engines = {g: TrtEngine(engine_dir / build.engines[g]) for g in GRAPHS}
        self.device = f"cuda:{gpu.name} (TensorRT {trt.__version__})"

    def attend(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._engines[MEMORY_ATTENTION].run(dict(feeds))[ATTENTION_OUTPUTS[0]]

    def decode(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._engines[MASK_DECODER].run(dict(feeds))
        return {name: out[name] for name in DECODER_OUTPUTS}

    def encode_memory(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._engines[MEMORY_ENCODER].run(dict(feeds))[ENCODER_OUTPUTS[0]]
