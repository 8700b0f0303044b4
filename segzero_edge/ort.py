"""The one ONNX Runtime session factory: every graph of an engine directory, reasoner and SAM2 alike.

``device`` names where sessions run:

* ``"cpu"``: CPUExecutionProvider.
* ``"cuda"`` / ``"cuda:N"``: CUDAExecutionProvider on GPU N (default 0), with the CPU provider for what
  CUDA cannot run. Needs the ``ort-gpu`` extra (onnxruntime-gpu) and a working CUDA setup.
* ``"tensorrt"`` / ``"tensorrt:N"``: TensorrtExecutionProvider, then CUDA, then CPU. Its engines are cached
  under ``trt_cache_dir``; dynamic inputs get the profiles from the manifest. Never picked by ``"auto"``:
  its first session builds engines for minutes (use ``segzero-edge build`` and ``backend="trt"`` instead).
* ``"auto"``: CUDA GPU 0 when this onnxruntime has the CUDA provider and it starts, else the CPU; a fallback
  is logged once per factory.

A device the user named explicitly that cannot be had is an error (``BackendUnavailableError``):
onnxruntime-gpu lists the CUDA provider even where no GPU or CUDA library exists and then silently runs on
the CPU, so the providers a session really got are checked.

Graph optimizations: ``ORT_ENABLE_ALL`` for every graph, minus ``CPU_DISABLED_OPTIMIZERS`` when a session
runs on the CPU provider alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BackendUnavailableError, EngineIncompatibleError, InputError, missing_extra

log = logging.getLogger(__name__)

#: Device strings accepted by ``parse_device`` (``N``: a GPU index).
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "tensorrt", "tensorrt:N")
#: Graph rewrites left out when a session runs on the CPU provider alone. SkipLayerNormFusion turns
#: Add + LayerNormalization into com.microsoft.SkipLayerNormalization, whose CPU kernel (onnxruntime
#: 1.31) is ~30x slower than the two ops it replaces on [1, 4096, 256] (measured 17-34 ms vs 1.1-1.3 ms,
#: 1 thread); the SAM2 mask decoder spends a fifth of its time there. The reasoner graphs come out of the
#: optimizer node for node the same with or without it (onnxruntime 1.32: decoder 199 nodes, vision 225,
#: logits bit-identical), so one set serves every graph. CUDA and TensorRT keep the fusion.
CPU_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)

_PROVIDER = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
_DEVICE_RE = re.compile(r"(cpu|cuda|tensorrt)(?::(\d+))?")


def import_onnxruntime():
    """The ``onnxruntime`` module, or ``BackendUnavailableError`` naming the extra to install."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise missing_extra("the ONNX Runtime backend", "ort", cause=exc) from exc
    return onnxruntime


@dataclass(frozen=True)
class Device:
    """A parsed device: ``kind`` is ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"tensorrt"``; ``index`` the GPU."""

    kind: str
    index: int = 0

    def __str__(self) -> str:
        return self.kind if self.kind in ("auto", "cpu") else f"{self.kind}:{self.index}"

    @property
    def on_gpu(self) -> bool:
        return self.kind in ("cuda", "tensorrt")


def parse_device(device: str | Device) -> Device:
    """``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"tensorrt"`` or ``"tensorrt:N"`` -> ``Device``.

    Raises:
        InputError: anything else (the message lists the accepted forms).
    """
    if isinstance(device, Device):
        return device
    text = device.strip().lower() if isinstance(device, str) else None
    if text == "auto":
        return Device("auto")
    match = _DEVICE_RE.fullmatch(text or "")
    if match is None or (match.group(1) == "cpu" and match.group(2) is not None):
        raise InputError(f"unknown device {device!r}", hint=f"use one of {', '.join(DEVICES)}")
    return Device(match.group(1), int(match.group(2) or 0))


def _shape_string(shapes: Mapping[str, Sequence[int]]) -> str:
    return ",".join(f"{name}:{'x'.join(str(d) for d in dims)}" for name, dims in shapes.items())


def provider_list(
    device: Device,
    available: Sequence[str],
    *,
    trt_cache_dir: str | Path | None = None,
    trt_profiles: Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]] | None = None,
) -> list[str | tuple[str, dict[str, Any]]]:
    """The ``providers=`` argument of ``InferenceSession`` for a resolved (not ``"auto"``) ``device``.

    Args:
        device: where to run.
        available: ``onnxruntime.get_available_providers()``.
        trt_cache_dir: engine cache folder of the TensorRT provider.
        trt_profiles: input name -> (min, opt, max) shape, for the TensorRT provider's profile.

    Raises:
        BackendUnavailableError: the provider is not in this onnxruntime build.
    """
    if device.kind == "cpu":
        return ["CPUExecutionProvider"]
    wanted = _PROVIDER[device.kind]
    if wanted not in available:
        raise BackendUnavailableError(
            f"device {str(device)!r} needs ONNX Runtime's {wanted}, which this onnxruntime lacks "
            f"(it has: {', '.join(available)})",
            hint="pip uninstall onnxruntime && pip install 'segzero-edge[ort-gpu]' (onnxruntime-gpu), "
            "or use device='cpu'",
        )
    gpu = {"device_id": device.index}
    providers: list[str | tuple[str, dict[str, Any]]] = []
    if device.kind == "tensorrt":
        opts: dict[str, Any] = dict(gpu)
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
    return [*providers, ("CUDAExecutionProvider", dict(gpu)), "CPUExecutionProvider"]


def disabled_optimizers(providers: Sequence[Any]) -> list[str] | None:
    """The ``disabled_optimizers=`` of ``InferenceSession`` for ``providers`` (``provider_list``'s result):
    ``CPU_DISABLED_OPTIMIZERS`` when the CPU provider runs alone, else None (all optimizers)."""
    return list(CPU_DISABLED_OPTIMIZERS) if list(providers) == ["CPUExecutionProvider"] else None


class SessionFactory:
    """Creates the ONNX Runtime sessions of one ``Segmenter`` (or pipeline): one device, one set of options.

    Args:
        device: see the module docstring (``"auto"``, ``"cpu"``, ``"cuda[:N]"``, ``"tensorrt[:N]"``).
        threads: intra-op threads per session (None: ONNX Runtime's default, one per core); inter-op
            threads are then 1.

    Raises:
        InputError: unknown device string.
        BackendUnavailableError: onnxruntime missing, or an explicitly named device this onnxruntime
            cannot serve (checked here, before any file is read).
    """

    def __init__(self, device: str | Device = "auto", *, threads: int | None = None) -> None:
        self.requested = parse_device(device)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InputError(f"threads must be an int >= 1 or None, got {threads!r}")
        self.threads = threads
        self._ort = import_onnxruntime()
        available = self._ort.get_available_providers()
        if self.requested.kind == "auto":
            self.device = Device("cuda", 0) if _PROVIDER["cuda"] in available else Device("cpu")
        else:
            provider_list(self.requested, available)  # raises when the provider is missing
            self.device = self.requested

    def create(
        self,
        path: str | Path,
        *,
        threads: int | None = None,
        trt_cache_dir: str | Path | None = None,
        trt_profiles: Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]] | None = None,
        spin: bool = True,
    ):
        """An ``onnxruntime.InferenceSession`` for the graph at ``path``.

        Args:
            path: the ``.onnx`` file.
            threads: intra-op threads of this session (default: the factory's).
            trt_cache_dir, trt_profiles: for ``device="tensorrt"`` (see ``provider_list``).
            spin: let the intra-op worker threads spin-wait for work between runs (ONNX Runtime's default).
                Off for pipelines that run several sessions in turn: a session's spinning workers then
                compete with the next session's (measured on 2 cores: the world tracker's frame 47 -> 23 ms).

        Raises:
            EngineIncompatibleError: ONNX Runtime cannot load the graph.
            BackendUnavailableError: the requested GPU provider did not start.
        """
        providers = provider_list(
            self.device, self._ort.get_available_providers(), trt_cache_dir=trt_cache_dir, trt_profiles=trt_profiles
        )
        session = self._session(path, providers, self.threads if threads is None else threads, spin)
        got = session.get_providers()
        wanted = _PROVIDER[self.device.kind]
        if wanted in got:
            log.debug("%s: providers %s", Path(path).name, got)
            return session
        if self.requested.kind != "auto":
            raise BackendUnavailableError(
                f"ONNX Runtime could not start {wanted} for {Path(path).name} on device {str(self.device)!r} "
                f"(the session runs on {got})",
                hint="check the GPU and the CUDA/cuDNN/TensorRT libraries onnxruntime-gpu needs (see its log "
                "above), or use device='cpu'",
            )
        log.warning("device 'auto': %s did not start (%s); running on the CPU", wanted, Path(path).name)
        self.device = Device("cpu")
        return self._session(path, ["CPUExecutionProvider"], self.threads if threads is None else threads, spin)

    def open_graph(self, engine_dir: str | Path, spec, *, threads: int | None = None, spin: bool = True):
        """``create`` for a graph of an engine directory (``spec``: its manifest ``GraphSpec``): with the
        TensorRT provider, the engine cache goes to ``engine_dir/trt/ort-tensorrt-ep`` and dynamic inputs
        get the manifest's profiles."""
        from .trt.profiles import profile_shapes

        engine_dir = Path(engine_dir)
        trt = self.device.kind == "tensorrt"
        return self.create(
            engine_dir / spec.file,
            threads=threads,
            trt_cache_dir=engine_dir / "trt" / "ort-tensorrt-ep" if trt else None,
            trt_profiles=profile_shapes(spec) if trt else None,
            spin=spin,
        )

    def _session(self, path: str | Path, providers: list, threads: int | None, spin: bool = True):
        ort = self._ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        if not spin:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(
                str(path), sess_options=so, providers=providers, disabled_optimizers=disabled_optimizers(providers)
            )
        except Exception as exc:  # onnxruntime raises its own exception classes
            raise EngineIncompatibleError(
                f"ONNX Runtime cannot load {path}: {exc}",
                hint="re-export the engine with this segzero-edge, or upgrade onnxruntime",
            ) from exc
