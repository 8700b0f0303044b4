"""Drawing a segmentation result over its image (the PNG ``segzero-edge predict`` and ``demo`` write).

The mask gets a tint and a contour in the palette colour farthest from the mean colour of the pixels it
covers, so a blue object is not tinted blue; the box is outlined in the same colour, the points are white
discs with a black ring (visible on any background).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

#: File name endings of what ``predict``/``demo`` write per image (``<stem>.overlay.png``,
#: ``<stem>.segzero.json``); dataset readers never take such files for samples or annotations.
OVERLAY_SUFFIX = ".overlay.png"
RESULT_SUFFIX = ".segzero.json"

#: Saturated colours the tint is chosen from (RGB).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 0, 255),  # magenta
    (0, 255, 0),  # green
    (255, 255, 0),  # yellow
    (0, 255, 255),  # cyan
    (255, 64, 0),  # orange
    (30, 144, 255),  # blue
)


def contrast_color(rgb: np.ndarray, mask: np.ndarray | None) -> tuple[int, int, int]:
    """The ``PALETTE`` colour farthest (RGB distance) from the mean colour under ``mask`` (the whole image
    when the mask is empty or None)."""
    pixels = rgb[mask] if mask is not None and mask.any() else rgb.reshape(-1, 3)
    mean = pixels.astype(np.float64).mean(axis=0)
    return max(PALETTE, key=lambda c: float(np.sum((np.asarray(c, np.float64) - mean) ** 2)))


def contour(mask: np.ndarray, width: int) -> np.ndarray:
    """The ``(H, W)`` bool band of about ``width`` pixels along the inside of the mask's boundary."""
    inner = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(2 * width + 1)))
    return mask & (inner == 0)


def draw_overlay(
    rgb: np.ndarray,
    mask: np.ndarray | None,
    box: Sequence[float] | None = None,
    points: Sequence[Sequence[float]] = (),
    *,
    color: tuple[int, int, int] | None = None,
    alpha: float = 0.45,
) -> Image.Image:
    """The image with the mask tinted and outlined, the box drawn and the points marked.

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB image.
        mask: ``(H, W)`` bool mask, or None.
        box: ``(x1, y1, x2, y2)`` in pixels of ``rgb``, or None.
        points: ``(x, y)`` points in pixels of ``rgb``.
        color: tint, contour and box colour (RGB); default ``contrast_color(rgb, mask)``.
        alpha: opacity of the tint in ``[0, 1]``.

    Returns:
        A new RGB ``PIL.Image`` of the same size.
    """
    if mask is not None and mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {rgb.shape[:2]}")
    color = color or contrast_color(rgb, mask)
    tint = np.asarray(color, np.float32)
    out = rgb.astype(np.float32)
    width = max(2, round(min(rgb.shape[:2]) / 200))
    if mask is not None and mask.any():
        out[mask] = (1.0 - alpha) * out[mask] + alpha * tint
        out[contour(mask, width)] = tint
    im = Image.fromarray(out.round().clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    if box is not None:
        draw.rectangle([float(v) for v in box], outline=color, width=width)
    r = max(3, round(min(im.size) / 80))
    for x, y in points:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255), outline=(0, 0, 0), width=max(1, width // 2))
    return im


def draw_segmentation(rgb: np.ndarray, result, *, alpha: float = 0.45) -> Image.Image:
    """A ``Segmentation`` over its image: one object with ``draw_overlay`` (contrast colour, the prompt box
    and points), several with ``draw_objects`` (one palette colour per object)."""
    if len(result.objects) > 1:
        return draw_objects(rgb, result.objects, alpha=alpha)
    return draw_overlay(rgb, result.mask, result.box, result.points, alpha=alpha)


def draw_objects(rgb: np.ndarray, objects: Sequence, *, alpha: float = 0.45, label: str | None = None) -> Image.Image:
    """Several objects over one frame, each in its own ``PALETTE`` colour (object i: ``PALETTE[i]``):
    the mask tinted and outlined, the box drawn, the point prompts marked; ``label`` (e.g. the frame number)
    in the top-left corner.

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB frame.
        objects: items with ``mask`` (``(H, W)`` bool) and ``box`` (``(x1, y1, x2, y2)`` or None), e.g. the
            ``ObjectMask`` entries of a ``Segmentation``; their ``prompt_box`` is drawn instead of ``box``
            and their ``points`` are marked when they have them (``predict``'s objects do).
    """
    out = rgb.astype(np.float32)
    width = max(2, round(min(rgb.shape[:2]) / 200))
    for i, obj in enumerate(objects):
        if obj.mask.any():
            tint = np.asarray(PALETTE[i % len(PALETTE)], np.float32)
            out[obj.mask] = (1.0 - alpha) * out[obj.mask] + alpha * tint
            out[contour(obj.mask, width)] = tint
    im = Image.fromarray(out.round().clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    r = max(3, round(min(im.size) / 80))
    for i, obj in enumerate(objects):
        color = PALETTE[i % len(PALETTE)]
        box = getattr(obj, "prompt_box", None) or obj.box
        if box is not None:
            draw.rectangle([float(v) for v in box], outline=color, width=width)
        for x, y in getattr(obj, "points", ()):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=color, outline=(0, 0, 0), width=max(1, width // 2))
    if label:
        draw.text((4, 2), label, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return im
