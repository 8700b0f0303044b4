"""Box + point prompts for the tiny SAM2, made from the world's ground-truth masks.

Coordinates are pixels of the scene image (``SCENE_SIZE`` x ``SCENE_SIZE``, which is also the tiny
SAM2's input size, so model space = image space): boxes ``(x1, y1, x2, y2)`` with inclusive corners
(``training.data.mask_box``), points ``(x, y)``. These are the prompts the reasoner gives SAM2 in
Seg-Zero: the target's box and two positive points inside the mask (``training.data.mask_points``,
the "largest inscribed circle" geometry of the Seg-Zero labels).

* ``gt_prompt(mask)``: the exact ground-truth prompt (evaluation).
* ``sample_prompt(mask, rng)``: a training prompt: the box with a little jitter (a reasoner is never
  pixel exact), and either the Seg-Zero points or two random points well inside the mask.
* ``SceneStore``: the scenes of a split as compact arrays (image + one uint8 label map per scene;
  the visible masks of a scene are disjoint, so one map holds them all).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segzero_edge.training.data import mask_box, mask_points

from . import SCENE_SIZE, SPLITS
from .scenes import generate_samples


@dataclass(frozen=True)
class Prompt:
    """One object's prompt: ``box`` ``(4,)`` float32 x1, y1, x2, y2 and ``points`` ``(2, 2)`` float32 (x, y),
    both in image pixels; all points are foreground (label 1)."""

    box: np.ndarray
    points: np.ndarray


def gt_prompt(mask: np.ndarray) -> Prompt:
    """The ground-truth Seg-Zero prompt of a ``(H, W)`` bool mask: tight box and the two mask points."""
    box = np.asarray(mask_box(mask), dtype=np.float32)
    points = np.asarray(mask_points(mask), dtype=np.float32)
    return Prompt(box, points)


def sample_prompt(mask: np.ndarray, rng: np.random.Generator, *, jitter: float = 0.08) -> Prompt:
    """A training prompt for a ``(H, W)`` bool mask (see the module docstring).

    Args:
        mask: the object's visible mask.
        rng: the random source (the caller seeds it).
        jitter: each box coordinate moves by up to ``jitter`` x the box side (uniform), 70% of the time.
    """
    h, w = mask.shape
    x1, y1, x2, y2 = (float(v) for v in mask_box(mask))
    if rng.random() < 0.7:
        bw, bh = x2 - x1 + 1, y2 - y1 + 1
        d = rng.uniform(-jitter, jitter, 4) * np.array([bw, bh, bw, bh])
        x1, y1, x2, y2 = x1 + d[0], y1 + d[1], x2 + d[2], y2 + d[3]
        x1, x2 = np.clip(sorted((x1, x2)), 0, w - 1)
        y1, y2 = np.clip(sorted((y1, y2)), 0, h - 1)
    box = np.array([x1, y1, x2, y2], dtype=np.float32)
    if rng.random() < 0.5:
        points = np.asarray(mask_points(mask), dtype=np.float32)
    else:  # two random pixels from the inner part of the mask (distance to the edge >= half its max)
        from scipy.ndimage import distance_transform_edt

        edt = distance_transform_edt(mask)
        ys, xs = np.nonzero(edt >= 0.5 * edt.max())
        pick = rng.integers(0, len(xs), 2)
        points = np.stack([xs[pick], ys[pick]], axis=1).astype(np.float32)
    return Prompt(box, points)


class SceneStore:
    """The (scene, query) samples of a split, kept compact.

    Attributes:
        images: ``[n, S, S, 3]`` uint8 RGB.
        labels: ``[n, S, S]`` uint8; pixel value ``k + 1`` = visible mask of object ``k``, 0 = none.
        num_objects: ``[n]`` objects per scene.
        targets: ``[n]`` index of each query's target object.
        kinds: query kind per sample (``attribute``, ``relation``, ...).
    """

    def __init__(self, samples) -> None:
        n = len(samples)
        size = samples[0][0].image.shape[0] if n else SCENE_SIZE
        self.images = np.empty((n, size, size, 3), np.uint8)
        self.labels = np.zeros((n, size, size), np.uint8)
        self.num_objects = np.empty(n, np.int64)
        self.targets = np.empty(n, np.int64)
        self.kinds: list[str] = []
        for i, (scene, query) in enumerate(samples):
            self.images[i] = scene.image
            for k, m in enumerate(scene.masks):
                self.labels[i][m] = k + 1
            self.num_objects[i] = len(scene.masks)
            self.targets[i] = query.target
            self.kinds.append(query.kind)

    @classmethod
    def from_split(cls, name: str, count: int | None = None) -> SceneStore:
        """The first ``count`` samples (default: all) of split ``name`` of ``world.SPLITS``.

        The first n samples of a split are the same whatever count was asked for (the generator is
        sequential), so a prefix is still the split.
        """
        split = SPLITS[name]
        n = split.count if count is None else min(count, split.count)
        return cls(generate_samples(split.seed, n, SCENE_SIZE))

    def __len__(self) -> int:
        return len(self.targets)

    def mask(self, i: int, k: int) -> np.ndarray:
        """Visible mask ``(S, S)`` bool of object ``k`` of scene ``i``."""
        return self.labels[i] == k + 1

    def target_mask(self, i: int) -> np.ndarray:
        """Visible mask of the query's target in scene ``i``."""
        return self.mask(i, int(self.targets[i]))
