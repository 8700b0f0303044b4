"""Video object segmentation scores as DAVIS defines them (Perazzi et al., CVPR 2016; the davis2017-evaluation
code): region similarity J and contour accuracy F per frame, and their means over a clip.

* J: the IoU of the predicted and the ground-truth mask (1 when both are empty).
* F: the F-measure of the two masks' boundaries, a boundary pixel counting as matched when the other
  boundary lies within ``ceil(0.008 * image diagonal)`` pixels (a disk). Boundaries are DAVIS's
  ``seg2bmap`` (a pixel differs from its east, south or south-east neighbour). Both empty: F = 1; one
  empty: F = 0.

Written here in numpy (the reference uses OpenCV and scikit-image, which the runtime does not need).
"""

from __future__ import annotations

import math

import numpy as np


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> float:
    """J of two ``(H, W)`` bool masks."""
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else float(np.count_nonzero(pred & gt) / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """DAVIS's ``seg2bmap`` at the mask's own size: ``(H, W)`` bool boundary pixels."""
    seg = mask.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def dilate_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of ``mask`` by the disk ``x^2 + y^2 <= radius^2`` (scikit-image's ``disk``)."""
    h, w = mask.shape
    out = np.zeros_like(mask, dtype=bool)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy > radius * radius:
                continue
            ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
            xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
            out[yd, xd] |= mask[ys, xs]
    return out


def contour_accuracy(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """F of two ``(H, W)`` bool masks (``bound_th`` >= 1: a radius in pixels; < 1: a fraction of the diagonal)."""
    radius = int(bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*pred.shape)))
    fg, gb = boundary_map(pred), boundary_map(gt)
    n_fg, n_gt = int(fg.sum()), int(gb.sum())
    if n_fg == 0 and n_gt == 0:
        return 1.0
    if n_fg == 0 or n_gt == 0:
        return 0.0
    precision = np.count_nonzero(fg & dilate_disk(gb, radius)) / n_fg
    recall = np.count_nonzero(gb & dilate_disk(fg, radius)) / n_gt
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def clip_scores(preds, gts) -> dict[str, float]:
    """Mean J, mean F and their mean J&F over the frames of a clip (sequences of ``(H, W)`` bool masks)."""
    j = [region_similarity(p, g) for p, g in zip(preds, gts, strict=True)]
    f = [contour_accuracy(p, g) for p, g in zip(preds, gts, strict=True)]
    jm, fm = float(np.mean(j)), float(np.mean(f))
    return {"J": jm, "F": fm, "J&F": (jm + fm) / 2, "frames": len(j)}
