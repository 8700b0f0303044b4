"""Host side of the SAM2 stage in numpy + PIL (no torch): image preprocessing, prompts -> decoder inputs,
mask choice, upsampling.

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

Prompts (``build_prompts``; the conventions of ``SAM2ImagePredictor.predict`` with ``normalize_coords=True``):
boxes ``(x1, y1, x2, y2)`` and points ``(x, y)`` in pixels of the original image (W x H); each axis is scaled
on its own to the stretched model input (``x / W * S``, ``y / H * S``); a box becomes two points with labels 2
(top-left) and 3 (bottom-right), placed before the points; point labels are 1 (foreground) or 0
(background); the decoder graph appends SAM2's padding point. Objects whose prompts have the same number of
points share one decoder call (at most ``max_objects`` per call); objects with a different count are decoded
in separate calls, so every object gets exactly the tokens the official predictor would give it (padding to
a common length would change the result).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .contract import HAS_MASK_INPUT, LABEL_BOX_BR, LABEL_BOX_TL, MASK_INPUT, POINT_COORDS, POINT_LABELS


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


@dataclass(frozen=True, eq=False)
class PromptBatch:
    """One decoder call.

    Attributes:
        indices: ``[n]`` positions of these objects in the caller's order.
        point_coords: ``[n, P, 2]`` float32, model-space pixels.
        point_labels: ``[n, P]`` float32.
        mask_input: ``[n, 1, r, r]`` float32 previous logits (zeros where absent).
        has_mask_input: ``[n]`` float32, 1.0 where ``mask_input`` is used.
    """

    indices: np.ndarray
    point_coords: np.ndarray
    point_labels: np.ndarray
    mask_input: np.ndarray
    has_mask_input: np.ndarray

    def feeds(self) -> dict[str, np.ndarray]:
        return {
            POINT_COORDS: self.point_coords,
            POINT_LABELS: self.point_labels,
            MASK_INPUT: self.mask_input,
            HAS_MASK_INPUT: self.has_mask_input,
        }


def _finite(arr: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{what} contain NaN or infinite values", hint="pass finite pixel coordinates")
    return arr


def _per_object_points(points, labels, n_boxes: int | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Points/labels as one ``[P_i, 2]`` / ``[P_i]`` pair per object."""
    ragged = isinstance(points, (list, tuple)) and len(points) > 0 and all(np.ndim(p) == 2 for p in points)
    if ragged:
        pts = [np.asarray(p, dtype=np.float32) for p in points]
    else:
        arr = np.asarray(points, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise InputError(f"points must be (P, 2), (N, P, 2) or a list of (P_i, 2), got shape {arr.shape}")
        pts = list(arr)
    for p in pts:
        if p.ndim != 2 or p.shape[1] != 2:
            raise InputError(f"each object's points must be (P, 2), got {p.shape}")
        _finite(p, "points")
    if labels is None:
        labs = [np.ones(len(p), dtype=np.float32) for p in pts]
    else:
        if ragged:
            labs = [np.asarray(x, dtype=np.float32).reshape(-1) for x in labels]
        else:
            arr = np.asarray(labels, dtype=np.float32)
            labs = list(arr[None] if arr.ndim == 1 else arr)
        if len(labs) != len(pts) or any(len(lab) != len(p) for lab, p in zip(labs, pts)):
            raise InputError("labels must give one label per point (same shape as points without the last axis)")
        for lab in labs:
            if not np.all(np.isin(lab, (0, 1))):  # 2/3 (box corners) and -1 (padding) are added here
                raise InputError(
                    "point labels must be 1 (foreground) or 0 (background)",
                    hint="boxes go in `boxes=`; labels 2/3 are the box corners SAM2 adds itself",
                )
    if n_boxes is not None and len(pts) != n_boxes:
        if len(pts) == 1 and n_boxes > 1:
            raise InputError(
                f"{n_boxes} boxes but points for 1 object", hint="give points as (N, P, 2), one set per box"
            )
        raise InputError(f"{n_boxes} boxes but points for {len(pts)} objects")
    return pts, labs


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """The bounding box ``(x1, y1, x2, y2)`` of a ``(H, W)`` bool mask in pixel edges (``x2`` = last
    column + 1), or None when the mask is empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def build_prompts(
    *,
    box=None,
    points=None,
    labels=None,
    mask_input=None,
    image_wh: tuple[int, int],
    image_size: int,
    low_res_size: int,
    max_objects: int,
) -> tuple[int, list[PromptBatch]]:
    """Check and convert prompts; returns (number of objects, decoder calls).

    Args:
        box: ``(4,)`` or ``(N, 4)`` XYXY boxes in original pixels, or None.
        points: ``(P, 2)``, ``(N, P, 2)`` or a list of N ``(P_i, 2)`` arrays in original pixels, or None.
        labels: per point 1 (foreground) / 0 (background), shaped like ``points`` without the last
            axis; None means all foreground.
        mask_input: previous low-res logits ``(r, r)``, ``(N, r, r)`` or ``(N, 1, r, r)``
            (``Sam2Result.low_res_logits``), or None.
        image_wh: ``(W, H)`` of the original image.
        image_size, low_res_size: S and r from the manifest.
        max_objects: most objects per decoder call.

    Raises:
        InputError: no prompt, wrong shapes, non-finite values, inconsistent object counts.
    """
    boxes = box
    if boxes is None and points is None:
        raise InputError("give a box, points, or both", hint="e.g. decode(features, box=[x1, y1, x2, y2])")
    w, h = image_wh
    n_boxes = None
    if boxes is not None:
        box_arr = _finite(np.asarray(boxes, dtype=np.float32), "boxes")
        if box_arr.ndim not in (1, 2) or box_arr.shape[-1] != 4:
            raise InputError(f"boxes must be (4,) or (N, 4) as x1, y1, x2, y2; got shape {box_arr.shape}")
        box_arr = box_arr.reshape(-1, 4)
        n_boxes = len(box_arr)
    pts, labs = _per_object_points(points, labels, n_boxes) if points is not None else (None, None)
    n = n_boxes if n_boxes is not None else len(pts)
    if n == 0:
        return 0, []

    wh = np.array([w, h], dtype=np.float32)
    coords_list, labels_list = [], []
    for i in range(n):
        cs, ls = [], []
        if n_boxes is not None:
            cs.append(box_arr[i].reshape(2, 2))
            ls.append(np.array([LABEL_BOX_TL, LABEL_BOX_BR], dtype=np.float32))
        if pts is not None:
            cs.append(pts[i])
            ls.append(labs[i])
        # Official order of operations (transform_coords): divide by the original size, then times S.
        coords_list.append(np.concatenate(cs).astype(np.float32) / wh * np.float32(image_size))
        labels_list.append(np.concatenate(ls).astype(np.float32))

    r = low_res_size
    masks = np.zeros((n, 1, r, r), dtype=np.float32)
    has = np.zeros((n,), dtype=np.float32)
    if mask_input is not None:
        m = np.asarray(mask_input, dtype=np.float32)
        if m.ndim == 2:
            m = m[None]
        if m.ndim == 4 and m.shape[1] == 1:
            m = m[:, 0]
        if m.shape != (n, r, r):
            raise InputError(
                f"mask_input must be ({r}, {r}) per object for {n} objects, got {np.shape(mask_input)}",
                hint="pass a previous result's low_res_logits",
            )
        masks[:, 0] = _finite(m, "the mask_input values")
        has[:] = 1.0

    batches = []
    by_count: dict[int, list[int]] = {}
    for i, c in enumerate(coords_list):
        by_count.setdefault(len(c), []).append(i)
    for _, idx in sorted(by_count.items()):
        for start in range(0, len(idx), max_objects):
            chunk = np.array(idx[start : start + max_objects], dtype=np.int64)
            batches.append(
                PromptBatch(
                    indices=chunk,
                    point_coords=np.stack([coords_list[i] for i in chunk]),
                    point_labels=np.stack([labels_list[i] for i in chunk]),
                    mask_input=np.ascontiguousarray(masks[chunk]),
                    has_mask_input=np.ascontiguousarray(has[chunk]),
                )
            )
    return n, batches


# -- user prompts in original-image pixels (checked before they become decoder inputs) ----------------


def box_outside(box: Sequence[float], w: int, h: int) -> bool:
    """True when the box ``(x1, y1, x2, y2)`` (either corner order, unclipped) has no point strictly inside
    the ``w x h`` image: clipping would leave an edge of it, not a region of the image."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        return False  # malformed: clip_box says why
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    return x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h


def format_box(box: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


def point_pairs(points: Sequence[Sequence[float]] | np.ndarray | None) -> tuple[tuple[float, float], ...]:
    """``[(x, y), ...]`` (any sequence or an ``(N, 2)`` array) as float pairs; raise on other shapes."""
    if points is None:
        return ()
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"points must be (x, y) number pairs, got {points!r}", hint="pass [(x, y), ...]") from None
    if arr.size == 0:
        return ()
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"points must be (x, y) pairs, got shape {list(arr.shape)}", hint="pass [(x, y), ...]")
    if not np.isfinite(arr).all():
        raise InputError(f"points must be finite numbers, got {points!r}")
    return tuple((float(x), float(y)) for x, y in arr)


def clip_box(box: Sequence[float], w: int, h: int) -> tuple[float, float, float, float]:
    """Reorder corners and clip to the image; raise on non-finite or wrongly sized boxes."""
    try:
        arr = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"box must be 4 finite numbers (x1, y1, x2, y2), got {box!r}") from None
    if arr.size != 4 or not np.isfinite(arr).all():
        raise InputError(f"box must be 4 finite numbers (x1, y1, x2, y2), got {box!r}")
    x1, x2 = sorted((float(np.clip(arr[0], 0, w)), float(np.clip(arr[2], 0, w))))
    y1, y2 = sorted((float(np.clip(arr[1], 0, h)), float(np.clip(arr[3], 0, h))))
    return (x1, y1, x2, y2)
