"""Pure-Python helpers of the TensorRT path: optimization profiles and cache folder names.

Neither needs TensorRT, so they are tested on any machine.
"""

from __future__ import annotations

import re

from ..errors import ManifestError
from ..manifest import GraphSpec, Manifest, TrtBuild

Shape = tuple[int, ...]


def profile_shapes(spec: GraphSpec) -> dict[str, tuple[Shape, Shape, Shape]]:
    """(min, opt, max) shape of every input that has a named dynamic dim, from ``spec.dynamic_dims``.

    Example: the SAM2 decoder's ``point_coords`` ``("num_objects", "num_points", 2)`` with profiles
    ``num_objects (1, 1, 16)`` and ``num_points (1, 4, 16)`` gives ``((1, 1, 2), (1, 4, 2), (16, 16, 2))``.

    Raises:
        ManifestError: an input has a named dim without a profile.
    """
    out: dict[str, tuple[Shape, Shape, Shape]] = {}
    for t in spec.inputs:
        if all(isinstance(d, int) for d in t.shape):
            continue
        rows = []
        for k in range(3):
            row = []
            for d in t.shape:
                if isinstance(d, int):
                    row.append(d)
                elif d in spec.dynamic_dims:
                    row.append(int(spec.dynamic_dims[d][k]))
                else:
                    raise ManifestError(
                        f"input {t.name!r} of {spec.file} has dynamic dim {d!r} without a "
                        "TensorRT profile in the manifest"
                    )
            rows.append(tuple(row))
        out[t.name] = (rows[0], rows[1], rows[2])
    return out


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9.]+", "-", text.lower())).strip("-.") or "gpu"


def build_key(gpu_name: str, tensorrt_version: str) -> str:
    """The folder under ``trt/`` for engines built on ``gpu_name`` with TensorRT ``tensorrt_version``.

    ``build_key("NVIDIA Jetson AGX Orin", "10.3.0") == "nvidia-jetson-agx-orin-10.3.0"``. Engines are
    tied to the GPU model and the TensorRT version, so each pair gets its own folder.
    """
    return f"{_slug(gpu_name)}-{_slug(tensorrt_version)}"


def find_build(manifest: Manifest, gpu_name: str, tensorrt_version: str) -> TrtBuild | None:
    """The manifest's build for this GPU and TensorRT version, or None."""
    key = build_key(gpu_name, tensorrt_version)
    return next((b for b in manifest.trt_builds if b.key == key), None)
