"""ONNX Runtime sessions for every graph of an engine directory (``onnxruntime`` imported lazily).

``device`` picks the execution providers:

* ``"cpu"``: CPUExecutionProvider.
* ``"cuda"``: CUDAExecutionProvider (needs the ``ort-gpu`` extra and a working CUDA setup).
* ``"tensorrt"``: TensorrtExecutionProvider, then CUDA, then CPU for what TensorRT cannot run. Its
  engines are cached under ``trt_cache_dir``; dynamic inputs get the profiles from the manifest.
* ``"auto"``: CUDA when ONNX Runtime can really create it on this machine, else CPU. (TensorRT is never
  picked automatically: its first session builds engines for minutes. Use ``segzero-edge build`` and
  ``backend="trt"``, or ask for ``device="tensorrt"``.)

onnxruntime-gpu lists the CUDA provider even where no GPU or CUDA library exists and then silently
falls back to the CPU; the providers a session really got are checked, and an explicit ``"cuda"`` or
``"tensorrt"`` request that did not succeed raises ``BackendUnavailableError``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import BackendUnavailableError, InputError, missing_extra

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
# Graph rewrites left out when a session runs on the CPU provider alone. SkipLayerNormFusion turns
# Add + LayerNormalization into com.microsoft.SkipLayerNormalization, whose CPU kernel (onnxruntime
# 1.31) is ~30x slower than the two ops it replaces on [1, 4096, 256] (measured 17-34 ms vs 1.1-1.3 ms,
# 1 thread); the SAM2 mask decoder spends a fifth of its time there. CUDA and TensorRT keep the fusion.
CPU_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
_PROVIDER = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def import_onnxruntime():
    """The ``onnxruntime`` module, or ``BackendUnavailableError`` naming the extra to install."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise missing_extra("the ONNX Runtime backend", "ort", cause=exc) from exc
    return onnxruntime


def _shape_string(shapes: Mapping[str, Sequence[int]]) -> str:
    return ",".join(f"{name}:{'x'.join(str(d) for d in dims)}" for name, dims in shapes.items())


def provider_list(
    device: str,
    available: Sequence[str],
    *,
    trt_cache_dir: str | Path | None = None,
    trt_profiles: Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]] | None = None,
) -> list[str | tuple[str, dict[str, Any]]]:
    """The ``providers=`` argument of ``InferenceSession`` for ``device``.

    Args:
        device: one of ``DEVICES``.
        available: ``onnxruntime.get_available_providers()``.
        trt_cache_dir: engine cache folder of the TensorRT provider.
        trt_profiles: input name -> (min, opt, max) shape, for the TensorRT provider's profile.

    Raises:
        InputError: unknown device.
        BackendUnavailableError: the provider is not in this onnxruntime build.
    """
    if device not in DEVICES:
        raise InputError(f"unknown device {device!r}", hint=f"use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "auto":
        return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []) + ["CPUExecutionProvider"]
    wanted = _PROVIDER[device]
    if wanted not in available:
        raise BackendUnavailableError(
            f"device={device!r} needs ONNX Runtime's {wanted}, which this onnxruntime lacks "
            f"(it has: {', '.join(available)})",
            hint="pip uninstall onnxruntime && pip install 'segzero-edge[ort-gpu]' (onnxruntime-gpu), "
            "or use device='cpu'",
        )
    providers: list[str | tuple[str, dict[str, Any]]] = []
    if device == "tensorrt":
        opts: dict[str, Any] = {}
        if trt_cache_dir is not None:
            Path(trt_cache_dir).mkdir(parents=True, exist_ok=True)
            opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(trt_cache_dir))
        if trt_profiles:
            opts.update(
                trt_profile_min_shapes=_shape_string({k: v[0] for k, v in trt_profiles.items()}),
                trt_profile_opt_shapes=_shape_string({k: v[1] for k, v in trt_profiles.items()}),
                trt_profile_max_shapes=_shape_string({k: v[2] for k, v in trt_profiles.items()}),
            )
        providers.append(("TensorrtExecutionProvider", opts))
    return [*providers, "CUDAExecutionProvider", "CPUExecutionProvider"]


def disabled_optimizers(providers: Sequence[Any]) -> list[str] | None:
    """The ``disabled_optimizers=`` of ``InferenceSession`` for ``providers`` (``provider_list``'s result):
    ``CPU_DISABLED_OPTIMIZERS`` when the CPU provider runs alone, else None (all optimizers)."""
    return list(CPU_DISABLED_OPTIMIZERS) if list(providers) == ["CPUExecutionProvider"] else None


def create_session(path: str | Path, *, device: str = "auto", threads: int | None = None, **provider_kw):
    """An ``onnxruntime.InferenceSession`` for ``path`` on ``device`` (see the module docstring).

    Args:
        path: the ``.onnx`` file.
        device: ``"auto" | "cpu" | "cuda" | "tensorrt"``.
        threads: intra-op threads (None: ONNX Runtime's default, one per core).
        provider_kw: ``trt_cache_dir`` / ``trt_profiles`` for ``provider_list``.

    Raises:
        BackendUnavailableError: onnxruntime missing, or the requested provider did not start.
    """
    ort = import_onnxruntime()
    providers = provider_list(device, ort.get_available_providers(), **provider_kw)
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(path), sess_options=so, providers=providers, disabled_optimizers=disabled_optimizers(providers)
    )
    got = session.get_providers()
    if device in ("cuda", "tensorrt") and _PROVIDER[device] not in got:
        raise BackendUnavailableError(
            f"ONNX Runtime could not start {_PROVIDER[device]} for {Path(path).name} (running on {got})",
            hint="check the CUDA/cuDNN/TensorRT libraries onnxruntime-gpu needs (see its log above), "
            "or use device='cpu'",
        )
    log.debug("%s: providers %s", Path(path).name, got)
    return session
