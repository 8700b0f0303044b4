"""Block-wise weight-only quantization of the decoder's linear layers (INT4 / INT8, symmetric).

The form is ONNX Runtime's ``com.microsoft.MatMulNBits``: a weight ``W`` of shape ``(K, N)`` (``y = x @ W``)
is cut along K into blocks of ``block_size``; each block of each output column has one float scale and
``q = round(w / scale)`` in ``[-2^(b-1), 2^(b-1) - 1]`` stored with the default zero point ``2^(b-1)``
(so no zero-point tensor). ``scale = w_m / -2^(b-1)`` where ``w_m`` is the block's value of largest
magnitude (its sign kept), which maps that value exactly onto ``-2^(b-1)``: ONNX Runtime's own symmetric
quantizer (``MatMulNBitsQuantizer`` with ``is_symmetric=True``), whose C++ kernel we call here, one weight
at a time, so the exporter never holds more than one layer's weight.

Layouts (MatMulNBits inputs): ``B`` uint8 ``(N, K_blocks, block_size * bits / 8)``, for 4 bits two values per
byte, the first in the low nibble; ``scales`` float32 ``(N * K_blocks,)``. K is zero-padded to whole blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from segzero_edge.errors import ConfigError

BITS = (4, 8)


@dataclass(frozen=True)
class QuantSpec:
    """How decoder weights are quantized.

    Attributes:
        bits: 4 or 8.
        block_size: values per block along K; a power of two >= 16 (MatMulNBits' rule). 128 by default
            for INT4 (the usual W4A16 choice), and 128 for INT8 too.
        accuracy_level: MatMulNBits ``accuracy_level`` (0: unset = fp32 compute, 1 fp32, 2 fp16, 3 bf16,
            4 int8 activations). Only the CPU kernels use it; 4 is fastest on CPUs with VNNI.
        symmetric: always True (TensorRT's INT4 weight-only path needs symmetric weights).
    """

    bits: int = 4
    block_size: int = 128
    accuracy_level: int = 0
    symmetric: bool = True

    def __post_init__(self) -> None:
        if self.bits not in BITS:
            raise ConfigError(f"quantization bits must be 4 or 8, got {self.bits!r}")
        bs = self.block_size
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 16 or bs & (bs - 1):
            raise ConfigError(f"block_size must be a power of two >= 16, got {bs!r}")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise ConfigError(f"accuracy_level must be 0..4, got {self.accuracy_level!r}")
        if not self.symmetric:
            raise ConfigError("only symmetric quantization is supported")

    def to_dict(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "block_size": self.block_size,
            "symmetric": True,
            "accuracy_level": self.accuracy_level,
            "format": "MatMulNBits",
            "algorithm": "rtn",
            "scale_dtype": "float32",
            "zero_point": 2 ** (self.bits - 1),
        }


def _blocks(k: int, block_size: int) -> int:
    return (k + block_size - 1) // block_size


def quantize_blockwise(w_kn: np.ndarray, spec: QuantSpec) -> tuple[np.ndarray, np.ndarray]:
    """Quantize ``W`` ``(K, N)`` float32 with ONNX Runtime's kernel.

    Returns:
        ``(packed, scales)``: uint8 ``(N, K_blocks, block_size * bits / 8)`` and float32 ``(N, K_blocks)``.
    """
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits, quantize_matmul_8bits

    w = np.ascontiguousarray(w_kn, dtype=np.float32)
    k, n = w.shape
    bs = spec.block_size
    kb = _blocks(k, bs)
    if kb * bs != k:
        w = np.ascontiguousarray(np.pad(w, ((0, kb * bs - k), (0, 0))))
    per_byte = 8 // spec.bits
    packed = np.zeros((n, kb, bs // per_byte), dtype=np.uint8)
    scales = np.zeros((n, kb), dtype=np.float32)
    zero_points = np.zeros((n, (kb + per_byte - 1) // per_byte), dtype=np.uint8)  # unused (symmetric)
    kernel = quantize_matmul_4bits if spec.bits == 4 else quantize_matmul_8bits
    kernel(packed, w, scales, zero_points, bs, n, k, True)
    return packed, scales


def quantize_blockwise_numpy(w_kn: np.ndarray, spec: QuantSpec) -> tuple[np.ndarray, np.ndarray]:
    """The same quantization written out in numpy (the specification; tests check it equals the kernel)."""
    w = np.asarray(w_kn, dtype=np.float32)
    k, n = w.shape
    bs, bits = spec.block_size, spec.bits
    kb = _blocks(k, bs)
    w = np.pad(w, ((0, kb * bs - k), (0, 0))).T.reshape(n, kb, bs)
    idx = np.abs(w).argmax(axis=-1)
    w_m = np.take_along_axis(w, idx[..., None], axis=-1)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    scales = (w_m / np.float32(lo)).astype(np.float32)
    inv = np.where(scales != 0, np.float32(1) / np.where(scales == 0, 1, scales), 0).astype(np.float32)
    q = np.clip(np.round(w * inv), lo, hi).astype(np.int32) - lo  # stored with zero point 2^(b-1)
    q = q.astype(np.uint8)
    if bits == 4:
        q = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    return q, scales[..., 0]


def dequantize_rows(packed: np.ndarray, scales: np.ndarray, k: int, bits: int, chunk: int = 8192) -> np.ndarray:
    """``(packed, scales)`` -> ``W^T`` ``(N, K)`` float32 (the layout of a torch ``Linear`` weight), computed
    ``chunk`` output rows at a time so the temporaries stay small (the LM head has 152k rows). In torch
    (the same float32 products as numpy, ~10x faster on the 7B LM head)."""
    import torch

    n, kb, _ = packed.shape
    out = np.empty((n, k), dtype=np.float32)
    dest = torch.from_numpy(out)
    with torch.no_grad():
        for i in range(0, n, chunk):
            p = torch.from_numpy(np.array(packed[i : i + chunk]))  # a writable copy of the chunk
            if bits == 4:
                q = torch.stack([p & 0x0F, p >> 4], dim=-1).reshape(p.shape[0], kb, -1).float() - 8
            else:
                q = p.float() - 128
            q *= torch.from_numpy(np.array(scales[i : i + chunk], np.float32)).reshape(-1, kb, 1)
            dest[i : i + chunk] = q.reshape(p.shape[0], -1)[:, :k]
    return out


def dequantize_blockwise(packed: np.ndarray, scales: np.ndarray, k: int, bits: int) -> np.ndarray:
    """``(packed, scales)`` -> ``W`` ``(K, N)`` float32: the weight MatMulNBits multiplies by."""
    return np.ascontiguousarray(dequantize_rows(packed, scales.reshape(packed.shape[0], -1), k, bits).T)
