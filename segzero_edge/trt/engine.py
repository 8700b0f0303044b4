"""Run a serialized TensorRT engine on numpy arrays (TensorRT 10 name-based API, no torch).

Host arrays are copied to device buffers owned by the engine (grown to the largest shape seen),
``execute_async_v3`` runs on the engine's own CUDA stream, outputs are copied back into new arrays.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from ..errors import EngineIncompatibleError, InputError
from .cuda import DeviceBuffer, call, import_cudart, import_tensorrt

log = logging.getLogger(__name__)


class TrtEngine:
    """One deserialized engine with its execution context, stream and device buffers.

    Args:
        path: the ``.engine`` file (built by ``segzero-edge build`` on this GPU and TensorRT version).

    Raises:
        BackendUnavailableError: tensorrt / cuda-python missing.
        EngineIncompatibleError: the file cannot be deserialized here (other GPU or TensorRT version).
    """

    def __init__(self, path: str | Path) -> None:
        trt = import_tensorrt()
        self._trt = trt
        self._cudart = import_cudart()
        self.path = Path(path)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise EngineIncompatibleError(
                f"TensorRT {trt.__version__} cannot load {self.path} (built for another GPU or TensorRT version?)",
                hint="rebuild the engines on this device: segzero-edge build ENGINE_DIR",
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise EngineIncompatibleError(f"cannot create an execution context for {self.path} (out of GPU memory?)")
        self._stream = call(self._cudart.cudaStreamCreate())
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self._buffers = {n: DeviceBuffer() for n in names}

    def _dtype(self, name: str) -> np.dtype:
        return np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs by name -> outputs by name (new host arrays).

        Raises:
            InputError: a missing input, or a shape outside the engine's optimization profile.
        """
        h2d = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        keep = []  # host arrays must live until the stream is synchronized
        for name in self.inputs:
            if name not in feeds:
                raise InputError(f"{self.path.name}: missing input {name!r}")
            arr = np.ascontiguousarray(feeds[name], dtype=self._dtype(name))
            if not self.context.set_input_shape(name, arr.shape):
                lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
                raise InputError(
                    f"{self.path.name}: input {name!r} of shape {arr.shape} is outside the "
                    f"engine's profile {tuple(lo)}..{tuple(hi)}"
                )
            ptr = self._buffers[name].ptr(arr.nbytes)
            call(self._cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes, h2d, self._stream))
            self.context.set_tensor_address(name, ptr)
            keep.append(arr)
        outs = {}
        for name in self.outputs:
            host = np.empty(tuple(self.context.get_tensor_shape(name)), dtype=self._dtype(name))
            self.context.set_tensor_address(name, self._buffers[name].ptr(host.nbytes))
            outs[name] = host
        if not self.context.execute_async_v3(int(self._stream)):
            raise RuntimeError(f"TensorRT execution of {self.path.name} failed (see the TensorRT log)")
        for name, host in outs.items():
            call(
                self._cudart.cudaMemcpyAsync(
                    host.ctypes.data, self._buffers[name].ptr(host.nbytes), host.nbytes, d2h, self._stream
                )
            )
        call(self._cudart.cudaStreamSynchronize(self._stream))
        del keep
        return outs

    def close(self) -> None:
        """Free the device buffers and the stream (also done when the object is collected)."""
        for buf in getattr(self, "_buffers", {}).values():
            buf.free()
        if getattr(self, "_stream", None) is not None:
            call(self._cudart.cudaStreamDestroy(self._stream))
            self._stream = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: CUDA may already be gone
            self.close()


def open_build(engine_dir: str | Path, manifest, graphs: tuple[str, ...], what: str):
    """The engines of ``graphs`` from the manifest's build for this GPU and TensorRT version.

    Returns:
        ``(build, {graph: TrtEngine}, device description)``.

    Raises:
        BackendUnavailableError: tensorrt / cuda-python / GPU missing, or no build with these graphs here
            (``what`` names them in the message, e.g. ``"SAM2"``).
        EngineFileError: an engine file is missing or truncated.
    """
    from ..errors import BackendUnavailableError
    from ..manifest import verify_files
    from .cuda import gpu_info
    from .profiles import find_build

    trt = import_tensorrt()
    gpu = gpu_info()
    engine_dir = Path(engine_dir)
    build = find_build(manifest, gpu.name, trt.__version__)
    if build is None or not set(graphs) <= set(build.engines):
        have = ", ".join(b.key for b in manifest.trt_builds) or "none"
        raise BackendUnavailableError(
            f"{engine_dir} has no {what} TensorRT engines for {gpu.name} with TensorRT {trt.__version__} "
            f"(builds: {have})",
            hint=f"run `segzero-edge build {engine_dir}` on this device",
        )
    verify_files(build.files, engine_dir, "size")
    engines = {g: TrtEngine(engine_dir / build.engines[g]) for g in graphs}
    return build, engines, f"cuda:{gpu.name} (TensorRT {trt.__version__})"
