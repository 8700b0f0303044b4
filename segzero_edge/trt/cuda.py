"""The few CUDA runtime calls the TensorRT path needs, through cuda-python (imported lazily).

cuda-python moved its runtime module from ``cuda.cudart`` (<= 12.x) to ``cuda.bindings.runtime``
(12.6+; the old name is gone in 13); both are accepted. Every call returns ``(error, *values)``;
``call`` checks the error and raises ``RuntimeError`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BackendUnavailableError, missing_extra


def import_tensorrt():
    """The ``tensorrt`` module, or ``BackendUnavailableError`` naming the extra."""
    try:
        import tensorrt
    except ImportError as exc:
        raise missing_extra("the TensorRT backend", "tensorrt", cause=exc) from exc
    return tensorrt


def import_cudart():
    """cuda-python's CUDA runtime module (``cudaMalloc``, ``cudaMemcpyAsync``, ...)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as exc:
            raise missing_extra("the TensorRT backend (cuda-python)", "tensorrt", cause=exc) from exc
    return cudart


def call(result):
    """Unpack a cuda-python result ``(err, *values)``; raise on error; return the value(s)."""
    cudart = import_cudart()
    err, values = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        _, name = cudart.cudaGetErrorName(err)
        raise RuntimeError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class GpuInfo:
    """The GPU engines are built for and run on: name (``"NVIDIA Jetson AGX Orin"``), ``"8.7"``."""

    name: str
    compute_capability: str


def gpu_info(device: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device ``device``.

    Raises:
        BackendUnavailableError: no CUDA device / driver, or cuda-python missing.
    """
    cudart = import_cudart()
    try:
        count = call(cudart.cudaGetDeviceCount())
        if not count:
            raise RuntimeError("no CUDA device")
        props = call(cudart.cudaGetDeviceProperties(device))
    except RuntimeError as exc:
        raise BackendUnavailableError(
            f"TensorRT needs a CUDA GPU: {exc}",
            hint="run on the device with its NVIDIA driver, or use backend='ort'",
        ) from exc
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(name=name.split("\x00")[0].strip(), compute_capability=f"{props.major}.{props.minor}")


class DeviceBuffer:
    """A device allocation that grows on demand (``ptr(nbytes)``); freed by ``free``."""

    def __init__(self) -> None:
        self._ptr = 0
        self._size = 0

    def ptr(self, nbytes: int) -> int:
        if nbytes > self._size:
            self.free()
            cudart = import_cudart()
            self._ptr = int(call(cudart.cudaMalloc(max(nbytes, 256))))
            self._size = max(nbytes, 256)
        return self._ptr

    def free(self) -> None:
        if self._ptr:
            call(import_cudart().cudaFree(self._ptr))
            self._ptr, self._size = 0, 0
