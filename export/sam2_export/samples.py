"""Deterministic validation inputs: synthetic images and one prompt set per prompt kind.

Images are smooth gradients with a few filled ellipses and rectangles (structure for the encoder to
respond to), at sizes that exercise upscaling, downscaling and non-square aspect ratios. Prompts are
placed on the shapes, in original-image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: (H, W) of the validation images: upscale 4:3, downscale with antialiasing, odd upscale ratio.
IMAGE_SIZES: tuple[tuple[int, int], ...] = ((480, 640), (1200, 1100), (250, 333), (720, 1280))


@dataclass(frozen=True)
class PromptCase:
    """One prompt set in original-image pixels (``boxes`` [N,4] / ``points`` [N,P,2] / ``labels`` [N,P])."""

    kind: str
    boxes: np.ndarray | None = None
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    use_previous_mask: bool = False

    @property
    def num_objects(self) -> int:
        return len(self.boxes) if self.boxes is not None else len(self.points)


def synthetic_image(height: int, width: int, seed: int) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB image: a colour gradient with random ellipses and rectangles."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = xx / max(width - 1, 1), yy / max(height - 1, 1)
    c0, c1 = rng.uniform(30, 220, 3), rng.uniform(30, 220, 3)
    img = c0 * (1 - u[..., None]) * (1 - 0.5 * v[..., None]) + c1 * u[..., None] * (0.5 + 0.5 * v[..., None])
    for _ in range(6):
        cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
        rx, ry = rng.uniform(0.06, 0.25) * width, rng.uniform(0.06, 0.25) * height
        colour = rng.uniform(0, 255, 3)
        inside = (
            (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1)
            if rng.random() < 0.6
            else ((np.abs(xx - cx) <= rx) & (np.abs(yy - cy) <= ry))
        )
        img[inside] = colour
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def prompt_cases(height: int, width: int, seed: int) -> list[PromptCase]:
    """Every prompt kind for an image of size (H, W): box + 2 points (Seg-Zero), box only, points
    only (one foreground + one background), one click, 3 objects in one call, and a refinement with
    the previous mask."""
    rng = np.random.default_rng(seed + 1000)

    def box() -> np.ndarray:
        x1, y1 = rng.uniform(0.05, 0.5) * width, rng.uniform(0.05, 0.5) * height
        return np.array(
            [x1, y1, x1 + rng.uniform(0.2, 0.45) * width, y1 + rng.uniform(0.2, 0.45) * height],
            dtype=np.float32,
        )

    def inside(b: np.ndarray, k: int) -> np.ndarray:
        t = rng.uniform(0.25, 0.75, (k, 2)).astype(np.float32)
        return np.stack([b[0] + t[:, 0] * (b[2] - b[0]), b[1] + t[:, 1] * (b[3] - b[1])], axis=1)

    b = box()
    two = inside(b, 2)
    bg = np.array([[rng.uniform(0, 0.1) * width, rng.uniform(0.9, 1.0) * height]], dtype=np.float32)
    boxes3 = np.stack([box() for _ in range(3)])
    return [
        PromptCase("box+points", b[None], two[None], np.ones((1, 2), np.float32)),
        PromptCase("box", b[None]),
        PromptCase("points", points=np.concatenate([two[:1], bg])[None], labels=np.array([[1, 0]], np.float32)),
        PromptCase("point", points=two[:1][None], labels=np.ones((1, 1), np.float32)),
        PromptCase("3 objects", boxes3, np.stack([inside(x, 1) for x in boxes3]), np.ones((3, 1), np.float32)),
        PromptCase("box+points+mask", b[None], two[None], np.ones((1, 2), np.float32), use_previous_mask=True),
    ]
