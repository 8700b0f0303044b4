"""What starts or re-prompts a track: the user's prompts checked against the frame, a reasoner's answer turned
into prompts (its boxes and points, or the masks of an engine that segments by itself: LENS), and masks brought
to the model's input as ``SAM2VideoPredictor.add_new_mask`` does (``mask_inputs``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..sam2.host import box_outside, format_box
from ..types import Answer


def resize_antialiased(x: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` float32 -> ``out_hw``: bilinear with antialiasing when shrinking, as torch's
    ``F.interpolate(mode="bilinear", align_corners=False, antialias=True)`` that SAM2's mask inputs go through.

    Pillow's resampling of float32 images is the same filter (torch's antialiased kernel was written to match
    it); measured against torch: max |diff| 1.2e-5 on 0/1 masks (240x320 -> 224), 2.4e-4 on +-10 logits.
    """
    from PIL import Image

    h, w = out_hw
    img = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32), mode="F")
    return np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.float32)


def mask_inputs(masks: np.ndarray, image_size: int) -> np.ndarray:
    """``[N, H, W]`` bool masks -> ``[N, 1, S, S]`` float32 0/1, as ``SAM2VideoPredictor.add_new_mask`` takes
    them: resized with ``resize_antialiased`` and thresholded at 0.5 unless already S x S."""
    n, h, w = masks.shape
    out = np.empty((n, 1, image_size, image_size), np.float32)
    for i, m in enumerate(masks):
        m = m.astype(np.float32)
        out[i, 0] = m if (h, w) == (image_size, image_size) else resize_antialiased(m, (image_size,) * 2) >= 0.5
    return out


def as_masks(mask: Any, size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` or ``[N, H, W]`` masks (bool, or numbers: non-zero is the object) at the frame's size
    ``(W, H)`` -> ``[N, H, W]`` bool; empty masks are kept (SAM2 tracks them as absent)."""
    w, h = size
    try:
        masks = np.asarray(mask)
    except (TypeError, ValueError) as exc:
        raise InputError(f"mask is not an array ({exc})", hint="give an (H, W) bool array") from exc
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3 or masks.shape[1:] != (h, w) or masks.shape[0] == 0:
        raise InputError(
            f"mask of shape {np.asarray(mask).shape} does not fit the {w}x{h} frame",
            hint=f"give one bool array of shape ({h}, {w}), or of shape (N, {h}, {w}) for N objects",
        )
    if masks.dtype.kind not in "biuf":
        raise InputError(f"mask of dtype {masks.dtype} is not a bool mask", hint="give a bool (or 0/1) array")
    if masks.dtype.kind == "f" and not np.isfinite(masks).all():
        raise InputError("mask holds NaN or infinite values", hint="give a bool (or 0/1) array")
    return masks > 0 if masks.dtype != bool else masks


def check_masks(mask: Any, size: tuple[int, int], image_size: int) -> np.ndarray:
    """A user's masks to start a track with: ``as_masks``, and each with a pixel set at the frame's size and at
    the model's ``image_size`` -> ``[N, H, W]`` bool."""
    masks = as_masks(mask, size)
    empty = [i for i, m in enumerate(masks) if not m.any()]
    if empty:
        raise InputError(f"mask {empty[0]} has no pixel set", hint="give each object's mask with its pixels True")
    vanished = [i for i, m in enumerate(mask_inputs(masks, image_size)) if not m.any()]
    if vanished:
        raise InputError(
            f"mask {vanished[0]} is too small: nothing of it is left at SAM2's {image_size}x{image_size} input",
            hint="give a larger mask (or a box) for this object",
        )
    return masks


def check_boxes(box, size: tuple[int, int]) -> None:
    """Refuse a well-formed box with no area inside the frame (SAM2 would still answer something);
    malformed boxes are refused by ``build_prompts`` with the shapes it takes."""
    try:
        boxes = np.asarray(box, dtype=np.float64).reshape(-1, 4) if box is not None else ()
    except (TypeError, ValueError):
        return
    w, h = size
    for b in boxes:
        if box_outside(b, w, h):
            raise InputError(
                f"box {format_box(b)} lies outside the {w}x{h} frame",
                hint="give boxes in the frame's pixels (x1, y1, x2, y2)",
            )


def answer_error(answer: Answer | None, masks: np.ndarray | None = None) -> str:
    if answer is None:
        return "no answer"
    if masks is not None:
        return "the engine's mask is empty (or too small for SAM2's input)"
    return answer.error or "the answer's box has no area inside the frame"


def answer_prompts(
    answer: Answer | None, size: tuple[int, int], masks: np.ndarray | None = None, image_size: int | None = None
):
    """SAM2 prompts of a usable answer: its ``masks`` when the engine gave some (those with a pixel left at the
    model's ``image_size``), else the box and points of every object whose box has area in the frame (the
    others are left out); None when nothing is usable."""
    if masks is not None:
        kept = [m for m in masks if m.any()]
        if kept and image_size is not None:
            inputs = mask_inputs(np.stack(kept), image_size)
            kept = [m for m, x in zip(kept, inputs) if x.any()]
        return {"mask": np.stack(kept)} if kept else None
    if answer is None or not answer.ok or not answer.objects:
        return None
    w, h = size
    boxes, points = [], []
    for obj in answer.objects:
        if box_outside(obj.box, w, h):
            continue
        boxes.append(list(obj.box))
        points.append(np.asarray(obj.points, dtype=np.float32).reshape(-1, 2))
    if not boxes:
        return None
    if any(len(p) == 0 for p in points):
        return {"box": boxes}
    return {"box": boxes, "points": points}
