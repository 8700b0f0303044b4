"""The tracker graphs as TensorRT engines built on this device (``segzero-edge build``), no torch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..manifest import Manifest
from ..trt.engine import open_build
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
        self.build, self._engines, self.device = open_build(engine_dir, manifest, GRAPHS, "tracker")

    def attend(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._engines[MEMORY_ATTENTION].run(dict(feeds))[ATTENTION_OUTPUTS[0]]

    def decode(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._engines[MASK_DECODER].run(dict(feeds))
        return {name: out[name] for name in DECODER_OUTPUTS}

    def encode_memory(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._engines[MEMORY_ENCODER].run(dict(feeds))[ENCODER_OUTPUTS[0]]
