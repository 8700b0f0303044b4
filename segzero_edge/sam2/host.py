"""Host side of the SAM2 stage in numpy + PIL (no torch): image preprocessing, mask choice, upsampling.

Preprocessing: the official ``SAM2Transforms`` does ``ToTensor`` (uint8 -> float in [0, 1]), torchvision
``Resize((S, S))`` (bilinear with antialiasing, aspect ratio ignored) and ``Normalize`` (ImageNet
mean/std). torch's antialiased bilinear kernel is a port of Pillow's resampling, so resizing each
channel as a 32-bit float (mode ``"F"``) PIL image reproduces it: the measured max |diff| against the
official torch preprocessing is 2.4e-7 before normalization (1.1e-6 after) for images from 48x64 to
1920x1080 (``tests/sam2/test_sam2_preprocess.py`` checks it).

The rest reproduces ``SAM2ImagePredictor`` / ``MaskDecoder`` semantics on the decoder graph's raw outputs
(all four mask tokens):

* ``"best"`` (Seg-Zero, ``multimask_output=True`` + highest score): the multimask token (1..3) with
  the highest predicted IoU; ties go to the lowest index (``argmax``).
* ``"single"`` (``multimask_output=False`` with ``build_sam2``'s ``dynamic_multimask_via_stability``):
  token 0 when its stability score ``area(logit > delta) / area(logit > -delta)`` (1.0 when the second
  area is 0) is ``>= threshold``, else the best multimask token as above. Areas are integer counts,
  so there is no FP16 overflow concern here.
* upsampling: bilinear, ``align_corners=False``, straight from the low-res logits to the original
  (H, W), with torch's CPU index/weight arithmetic (weights bit-identical; width first, then height;
  values within ~1 ulp of ``F.interpolate``), then ``> mask_threshold`` (0.0).
"""

from __future__ import annotations

import numpy as np


def stability_scores(logits: np.ndarray, delta: float) -> np.ndarray:
    """Stability of ``[N, h, w]`` logits: ``count(> delta) / count(> -delta)`` (1.0 if the latter is 0)."""
    flat = logits.reshape(logits.shape[0], -1)
    inter = np.count_nonzero(flat > np.float32(delta), axis=1).astype(np.float32)
    union = np.count_nonzero(flat > np.float32(-delta), axis=1).astype(np.float32)
    return np.where(union > 0, inter / np.maximum(union, 1), np.float32(1.0)).astype(np.float32)


def choose_masks(
    low_res: np.ndarray, iou_scores: np.ndarray, mode: str, *, delta: float = 0.05, threshold: float = 0.98
) -> np.ndarray:
    """Index (0..3) of the chosen mask token per object.

    Args:
        low_res: ``[N, 4, h, w]`` logits from the decoder graph.
        iou_scores: ``[N, 4]`` predicted IoUs.
        mode: ``"best"`` or ``"single"`` (see the module docstring).
        delta, threshold: the stability fallback of ``"single"``.

    Returns:
        ``[N]`` int64 token indices.
    """
    best = 1 + np.argmax(iou_scores[:, 1:], axis=1)
    if mode == "best":
        return best.astype(np.int64)
    if mode == "single":
        stable = stability_scores(low_res[:, 0], delta) >= np.float32(threshold)
        return np.where(stable, 0, best).astype(np.int64)
    raise ValueError(f"unknown mask mode {mode!r}")


def _linear_indices(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """torch's ``align_corners=False`` source indices and weights along one axis (float32 math)."""
    scale = np.float32(in_size) / np.float32(out_size)
    # torch evaluates scale * (dst + 0.5) - 0.5 with a fused multiply-add (one rounding): the float32
    # product is exact in float64, so computing there and rounding once gives the same float32.
    src = (np.float64(scale) * (np.arange(out_size, dtype=np.float64) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0.0))
    i0 = src.astype(np.int64)  # floor, src >= 0
    lam1 = np.clip(src - i0.astype(np.float32), 0.0, 1.0).astype(np.float32)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (np.float32(1.0) - lam1).astype(np.float32), lam1


def upsample_bilinear(logits: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``[N, h, w]`` float32 logits to ``[N, H, W]`` (``align_corners=False``)."""
    _, h, w = logits.shape
    out_h, out_w = out_hw
    x0, x1, wx0, wx1 = _linear_indices(w, out_w)
    y0, y1, wy0, wy1 = _linear_indices(h, out_h)
    rows = logits[:, :, x0] * wx0 + logits[:, :, x1] * wx1  # [N, h, W]
    return rows[:, y0, :] * wy0[:, None] + rows[:, y1, :] * wy1[:, None]


def masks_from_logits(low_res: np.ndarray, out_hw: tuple[int, int], threshold: float = 0.0) -> np.ndarray:
    """``[N, h, w]`` low-res logits -> ``[N, H, W]`` bool masks at the original size."""
    if low_res.shape[0] == 0:
        return np.zeros((0, *out_hw), dtype=bool)
    return upsample_bilinear(np.ascontiguousarray(low_res, dtype=np.float32), out_hw) > np.float32(threshold)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks of the same shape (1.0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else float(np.count_nonzero(a & b) / union)


def preprocess(
    rgb: np.ndarray, image_size: int, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> np.ndarray:
    """Official SAM2 preprocessing of an ``(H, W, 3)`` uint8 RGB array.

    Returns:
        ``[1, 3, S, S]`` float32 (S = ``image_size``): ``(resize(rgb / 255) - mean) / std``, the image
        stretched to S x S with antialiased bilinear resampling.
    """
    from PIL import Image

    x = rgb.astype(np.float32) / np.float32(255.0)
    out = np.empty((1, 3, image_size, image_size), dtype=np.float32)
    for c in range(3):
        channel = Image.fromarray(np.ascontiguousarray(x[..., c]))  # mode "F"
        resized = np.asarray(channel.resize((image_size, image_size), Image.BILINEAR), dtype=np.float32)
        out[0, c] = (resized - np.float32(mean[c])) / np.float32(std[c])
    return out
