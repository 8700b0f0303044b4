"""The tracker graphs as TensorRT engines built on this device (``segzero-edge build``), no torch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..manifest import Manifest
from ..sam2.contract import ENCODER_INPUTS as IMAGE_INPUTS
from ..sam2.contract import FEATURES
from ..trt.engine import open_build
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

GRAPHS = (MEMORY_ATTENTION, MASK_DECODER, MEMORY_ENCODER)


def has_trt_build(manifest: Manifest) -> bool:
    """True when some TensorRT build of the manifest holds all three tracker engines."""
    return any(set(GRAPHS) <= set(b.engines) for b in manifest.trt_builds)


class TrtTrackerBackend:
    """Runs the three tracker engines the manifest lists for this GPU and TensorRT version.

    ``tracker.mask_prompt`` (once per mask-started track) and ``tracker.image_encoder`` (LENS engines) are not
    built as engines: they run on ONNX Runtime (its CUDA provider when installed), opened on first use.

    Raises:
        BackendUnavailableError: tensorrt / cuda-python / GPU missing, or no tracker engines for this GPU.
        EngineFileError: an engine file is missing or truncated.
        EngineIncompatibleError: an engine cannot be deserialized by this TensorRT.
    """

    name = "trt"

    def __init__(self, engine_dir: str | Path, manifest: Manifest) -> None:
        self.build, self._engines, self.device = open_build(engine_dir, manifest, GRAPHS, "tracker")
        self._engine_dir, self._manifest = Path(engine_dir), manifest
        self._ort: dict[str, object] = {}

    def attend(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._engines[MEMORY_ATTENTION].run(dict(feeds))[ATTENTION_OUTPUTS[0]]

    def decode(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._engines[MASK_DECODER].run(dict(feeds))
        return {name: out[name] for name in DECODER_OUTPUTS}

    def encode_memory(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._engines[MEMORY_ENCODER].run(dict(feeds))[ENCODER_OUTPUTS[0]]

    def _session(self, name: str):
        if name not in self._ort:
            from ..ort import SessionFactory

            spec = self._manifest.graph(name)
            self._ort[name] = SessionFactory("auto").open_graph(self._engine_dir, spec, spin=False)
        return self._ort[name]

    def mask_pointer(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        if MASK_PROMPT not in self._manifest.graphs:
            raise missing_mask_prompt()
        return self._session(MASK_PROMPT).run(list(MASK_PROMPT_OUTPUTS), dict(feeds))[0]

    def encode_image(self, image: np.ndarray) -> dict[str, np.ndarray]:
        outs = self._session(IMAGE_ENCODER).run(list(FEATURES), {IMAGE_INPUTS[0]: image})
        return dict(zip(FEATURES, outs))
