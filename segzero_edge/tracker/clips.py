"""Seeded synthetic clips for checking a tracker (export validation, the TensorRT build check, tests,
benchmarks): moving shapes that occlude each other, leave the frame and come back, with the target's
ground-truth mask per frame (numpy + Pillow)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True, eq=False)
class Clip:
    """A clip and its prompt.

    Attributes:
        frames: ``T`` frames, ``(H, W, 3)`` uint8 RGB.
        masks: ``[T, H, W]`` bool ground truth of the target (empty while it is hidden or outside).
        box: the target's box on frame 0, ``(x1, y1, x2, y2)`` pixels.
        points: two points inside the target on frame 0 (a Seg-Zero answer's shape).
    """

    frames: list[np.ndarray]
    masks: np.ndarray
    box: tuple[float, float, float, float]
    points: tuple[tuple[float, float], ...]


def synthetic_clip(num_frames: int = 30, size: tuple[int, int] = (320, 240), *, seed: int = 0) -> Clip:
    """A disc (the target) moves right, leaves through the right edge and comes back moving left; a
    square crosses in front of it; a triangle moves in the background. Positions are fractions of the
    clip length, so every length has the exit, the re-entry and the occlusion.

    Args:
        num_frames: T (>= 8).
        size: ``(W, H)``.
        seed: background texture and colours.
    """
    if num_frames < 8:
        raise ValueError("a validation clip needs at least 8 frames")
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(60, 160, 3).astype(np.float32)
    grad = rng.uniform(-40, 40, (2, 3)).astype(np.float32)
    background = base + xx[..., None] / w * grad[0] + yy[..., None] / h * grad[1]
    background += rng.normal(0, 6, (h, w, 3)).astype(np.float32)
    background = np.clip(background, 0, 255).astype(np.uint8)
    target_colour = tuple(int(v) for v in rng.integers(170, 256, 3))
    occluder_colour = tuple(int(v) for v in rng.integers(0, 90, 3))
    other_colour = tuple(int(v) for v in rng.integers(90, 200, 3))
    r = 0.12 * min(w, h)
    frames, masks = [], []
    for t in range(num_frames):
        u = t / (num_frames - 1)
        # Target: x from 0.3W to 1.25W (outside) in the first 45%, back to 0.35W by the end.
        tx = w * (0.3 + 0.95 * u / 0.45) if u <= 0.45 else w * (1.25 - 0.9 * (u - 0.45) / 0.55)
        ty = h * (0.5 + 0.15 * np.sin(2 * np.pi * u))
        # Occluder: a square crossing from the left, in front of the target around 85% of the clip.
        ox = w * (-0.3 + 1.1 * u)
        oy = ty
        im = Image.fromarray(background.copy())
        draw = ImageDraw.Draw(im)
        bx = w * (0.8 - 0.5 * u)
        draw.polygon([(bx, h * 0.15), (bx + 0.1 * w, h * 0.35), (bx - 0.1 * w, h * 0.35)], fill=other_colour)
        draw.ellipse([tx - r, ty - r, tx + r, ty + r], fill=target_colour)
        target = Image.new("1", (w, h))
        ImageDraw.Draw(target).ellipse([tx - r, ty - r, tx + r, ty + r], fill=1)
        s = 1.3 * r
        draw.rectangle([ox - s, oy - s, ox + s, oy + s], fill=occluder_colour)
        hidden = Image.new("1", (w, h))
        ImageDraw.Draw(hidden).rectangle([ox - s, oy - s, ox + s, oy + s], fill=1)
        frames.append(np.asarray(im))
        masks.append(np.asarray(target, dtype=bool) & ~np.asarray(hidden, dtype=bool))
    m0 = masks[0]
    ys, xs = np.nonzero(m0)
    box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    cx, cy = float(xs.mean()), float(ys.mean())
    points = ((cx - 0.3 * r, cy), (cx + 0.3 * r, cy))
    return Clip(frames=frames, masks=np.stack(masks), box=box, points=points)
