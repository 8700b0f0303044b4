"""Drawing a segmentation result over its image (the PNG `segzero-edge predict` writes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw


def draw_overlay(
    rgb: np.ndarray,
    mask: np.ndarray | None,
    box: Sequence[float] | None = None,
    points: Sequence[Sequence[float]] = (),
    *,
    color: tuple[int, int, int] = (30, 144, 255),
    alpha: float = 0.45,
) -> Image.Image:
    """The image with the mask tinted, the box outlined and the points marked.

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB image.
        mask: ``(H, W)`` bool mask, or None.
        box: ``(x1, y1, x2, y2)`` in pixels of ``rgb``, or None.
        points: ``(x, y)`` points in pixels of ``rgb``.
        color: tint and outline colour (RGB).
        alpha: opacity of the tint in ``[0, 1]``.

    Returns:
        A new RGB ``PIL.Image`` of the same size.
    """
    out = rgb.astype(np.float32)
    if mask is not None:
        if mask.shape != rgb.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image {rgb.shape[:2]}")
        tint = np.asarray(color, np.float32)
        out[mask] = (1.0 - alpha) * out[mask] + alpha * tint
    im = Image.fromarray(out.round().clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    width = max(2, round(min(im.size) / 200))
    if box is not None:
        draw.rectangle([float(v) for v in box], outline=color, width=width)
    r = max(3, round(min(im.size) / 80))
    for x, y in points:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 215, 0), outline=(0, 0, 0), width=max(1, width // 2))
    return im
