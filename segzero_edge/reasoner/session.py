"""ONNX Runtime sessions for the reasoner graphs (onnxruntime imported lazily).

``device``: ``"cpu"``, ``"cuda"`` / ``"cuda:N"`` or ``"auto"`` (CUDA when ONNX Runtime can use it, else CPU).
On CUDA the decoder runs with I/O binding: the KV cache (``present.*`` outputs) stays in GPU memory and is
bound straight back as the next step's ``past_key_values.*``; only the new embeddings go up and the
last-position logits come down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, InputError, missing_extra

log = logging.getLogger(__name__)


def _ort():
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise missing_extra("the ONNX Runtime reasoner", "ort", cause=exc) from exc
    return ort


@dataclass(frozen=True)
class DeviceChoice:
    """Where sessions run: ``kind`` is ``"cpu"`` or ``"cuda"``; ``index`` the GPU."""

    kind: str
    index: int = 0

    @property
    def providers(self) -> list[Any]:
        if self.kind == "cuda":
            return [("CUDAExecutionProvider", {"device_id": self.index}), "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]


def resolve_device(device: str) -> DeviceChoice:
    """Parse ``device`` and check ONNX Runtime can serve it.

    Raises:
        InputError: an unknown device string.
        BackendUnavailableError: CUDA asked for but this onnxruntime has no CUDA provider.
    """
    if not isinstance(device, str):
        raise InputError(f"device must be a string, got {device!r}")
    ort = _ort()
    available = ort.get_available_providers()
    d = device.strip().lower()
    if d == "auto":
        return DeviceChoice("cuda", 0) if "CUDAExecutionProvider" in available else DeviceChoice("cpu")
    if d == "cpu":
        return DeviceChoice("cpu")
    if d == "cuda" or d.startswith("cuda:"):
        index = 0
        if ":" in d:
            try:
                index = int(d.split(":", 1)[1])
            except ValueError:
                raise InputError(f"invalid device {device!r}", hint="use 'cuda:0', 'cuda', 'cpu' or 'auto'") from None
        if "CUDAExecutionProvider" not in available:
            raise BackendUnavailableError(
                f"device {device!r} needs ONNX Runtime's CUDA provider; this onnxruntime has {available}",
                hint="pip install 'segzero-edge[ort-gpu]' (onnxruntime-gpu) instead of the CPU onnxruntime",
            )
        return DeviceChoice("cuda", index)
    raise InputError(f"unknown device {device!r}", hint="use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def make_session(path: str | Path, device: DeviceChoice, *, threads: int | None = None):
    """An ``InferenceSession`` for ``path`` on ``device`` (all graph optimisations on)."""
    ort = _ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), so, providers=device.providers)
    except Exception as exc:  # onnxruntime raises its own exception classes
        from ..errors import EngineIncompatibleError

        raise EngineIncompatibleError(
            f"ONNX Runtime cannot load {path}: {exc}",
            hint="re-export the engine with this segzero-edge, or upgrade onnxruntime",
        ) from exc
    if device.kind == "cuda" and "CUDAExecutionProvider" not in sess.get_providers():
        log.warning("%s: CUDA provider could not be created; running on CPU", Path(path).name)
    return sess


def session_device(sess) -> str:
    """``"cuda"`` when the session really runs on the CUDA provider, else ``"cpu"``."""
    return "cuda" if "CUDAExecutionProvider" in sess.get_providers() else "cpu"


class DecoderRunner:
    """Runs the decoder graph step by step, owning the KV cache.

    Args:
        session: the decoder's ``InferenceSession``.
        num_layers, num_kv_heads, head_dim: cache geometry.
        io_binding: keep the cache as ``OrtValue``s bound between steps (default: on when the session runs
            on CUDA, where it keeps the cache on the GPU; it also works on CPU).
        device_index: the GPU of the session.
    """

    def __init__(
        self,
        session,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        *,
        io_binding: bool | None = None,
        device_index: int = 0,
    ):
        self.session = session
        self.num_layers = num_layers
        self.kv_shape = (1, num_kv_heads, 1, head_dim)
        self.device = session_device(session)
        self.device_index = device_index
        self.io_binding = (self.device == "cuda") if io_binding is None else bool(io_binding)
        self.past_names = [f"past_key_values.{i}.{k}" for i in range(num_layers) for k in ("key", "value")]
        self.present_names = [f"present.{i}.{k}" for i in range(num_layers) for k in ("key", "value")]
        self.calls = 0
        self.reset()

    def reset(self) -> None:
        """Forget the cache (a new prompt follows).

        The cache starts with one zero slot that ``attention_mask`` hides (0), so that no graph dimension is
        ever empty (TensorRT optimisation profiles need ``past >= 1``); position ids do not count it.
        """
        self._past: list[Any] = [np.zeros(self.kv_shape, np.float32) for _ in self.past_names]
        self.length = 1

    def __call__(self, inputs_embeds: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """Feed ``inputs_embeds [1, n, hidden]`` at ``position_ids [3, 1, n]``; returns last logits ``[vocab]``."""
        n = inputs_embeds.shape[1]
        total = self.length + n
        mask = np.ones((1, total), np.int64)
        mask[0, 0] = 0  # the placeholder slot of reset()
        embeds = np.ascontiguousarray(inputs_embeds, dtype=np.float32)
        positions = np.ascontiguousarray(position_ids, dtype=np.int64)
        if self.io_binding:
            logits = self._run_bound(embeds, mask, positions)
        else:
            feeds = {"inputs_embeds": embeds, "attention_mask": mask, "position_ids": positions}
            feeds.update(zip(self.past_names, self._past))
            out = self.session.run(None, feeds)
            logits, self._past = out[0], out[1:]
        self.length = total
        self.calls += 1
        return logits[0]

    def _run_bound(self, embeds: np.ndarray, mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
        binding = self.session.io_binding()
        binding.bind_cpu_input("inputs_embeds", embeds)
        binding.bind_cpu_input("attention_mask", mask)
        binding.bind_cpu_input("position_ids", positions)
        for name, value in zip(self.past_names, self._past):
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        binding.bind_output("logits", "cpu")
        for name in self.present_names:
            binding.bind_output(name, self.device, self.device_index if self.device == "cuda" else 0)
        self.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        self._past = list(outputs[1:])
        return outputs[0].numpy()
