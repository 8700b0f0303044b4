"""Seeded clips of the small world: a scene's shapes move, and the target leaves the frame and comes back.

Each clip starts from a scene of ``scenes.generate_scene`` and an attribute query about it ("the red
circle": the attribute stays true while the shapes move, so re-reasoning later in the clip refers to the
same shape). Over ``T`` frames:

* every shape translates and rotates at its own seeded speed (bouncing off the borders);
* the target leaves through the nearest vertical border around 40% of the clip and comes back around 65%;
* another shape, drawn in front of the target, crosses it around 85% (occlusion).

Ground truth per frame: every shape's *visible* mask (later shapes occlude earlier ones; the occluder is
drawn last), so the target's mask is empty while it is outside or fully hidden. A pure function of the
seed. These clips are the world's tracking data: the video path of the world SAM2 trains and is measured
on them (J and F as DAVIS defines them, ``segzero_edge.evaluation.video``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageFilter

from .scenes import Query, SceneObject, _background, _paint, _shape_mask, generate_queries, generate_scene


@dataclass(frozen=True, eq=False)
class WorldClip:
    """A moving scene.

    Attributes:
        frames: ``T`` frames, ``(S, S, 3)`` uint8 RGB.
        masks: ``[T, N, S, S]`` bool visible mask of every shape in every frame (N shapes, drawing order of
            frame 0; the occluder is drawn last).
        objects: the shapes as on frame 0.
        query: the attribute query of frame 0; ``query.target`` indexes ``objects`` and ``masks``.
        occluder: index of the shape that crosses in front of the target.
    """

    frames: list[np.ndarray]
    masks: np.ndarray
    objects: tuple[SceneObject, ...]
    query: Query
    occluder: int

    @property
    def target_masks(self) -> np.ndarray:
        """``[T, S, S]`` the target's visible mask per frame."""
        return self.masks[:, self.query.target]


def _smooth(u: float, a: float, b: float) -> float:
    """0 before ``a``, 1 after ``b``, a smooth ramp between."""
    x = min(max((u - a) / (b - a), 0.0), 1.0)
    return x * x * (3 - 2 * x)


def generate_clip(seed: int, num_frames: int = 30, size: int = 224) -> WorldClip:
    """The clip of ``seed`` (see the module docstring); ``num_frames`` >= 8."""
    if num_frames < 8:
        raise ValueError("a world clip needs at least 8 frames")
    rng = np.random.default_rng(seed)
    for _ in range(100):
        scene = generate_scene(rng, size, n_objects=(3, 5), overlap=False)
        queries = [q for q in generate_queries(scene, rng, size) if q.kind == "attribute"]
        if queries:
            break
    else:  # pragma: no cover - every seed tried finds one within a few scenes
        raise RuntimeError(f"no attribute query in 100 scenes of seed {seed}")
    return animate(scene.objects, queries[0], rng, num_frames, size=size, paint_seed=seed)


def animate(
    objects: tuple[SceneObject, ...] | list[SceneObject],
    query: Query,
    rng: np.random.Generator,
    num_frames: int = 30,
    *,
    size: int = 224,
    paint_seed: int = 0,
    drift: float = 1.0,
) -> WorldClip:
    """A clip of a scene's shapes (see the module docstring): ``query.target`` leaves and comes back.

    ``objects`` are the scene's shapes in drawing order with centres and radii in pixels of a ``size`` x
    ``size`` frame; the last shape other than the target becomes the occluder. ``drift`` scales how fast the
    other shapes wander (0: they only rotate; a relation query stays true when they stay put).
    """
    if num_frames < 8:
        raise ValueError("a world clip needs at least 8 frames")
    objects = list(objects)
    t = query.target
    # The occluder: the last other shape, moved to the end of the drawing order.
    occ = max(i for i in range(len(objects)) if i != t)
    order = [i for i in range(len(objects)) if i != occ] + [occ]
    objects = [objects[i] for i in order]
    t = order.index(t)
    occ = len(objects) - 1
    query = replace(query, target=t, mentions=tuple((a, b, order.index(i)) for a, b, i in query.mentions))
    background = _background(rng, size, True)
    velocity = rng.uniform(-0.012, 0.012, (len(objects), 2)) * size * drift
    spin = rng.uniform(-0.08, 0.08, len(objects))
    angle0 = rng.uniform(0, math.pi / 6, len(objects))
    tx0, ty0 = objects[t].center
    exit_right = tx0 > size / 2
    far = (size + 2.5 * objects[t].radius) if exit_right else -2.5 * objects[t].radius
    frames, masks = [], []
    for k in range(num_frames):
        u = k / (num_frames - 1)
        shapes = []
        for i, obj in enumerate(objects):
            if i == t:  # out through the nearest side border by 45%, back from 60% to 75%
                away = _smooth(u, 0.2, 0.45) - _smooth(u, 0.6, 0.75)
                cx, cy = tx0 + away * (far - tx0), ty0
            elif i == occ:  # slides over the target around 85% of the clip
                cross = _smooth(u, 0.7, 0.95)
                start = (tx0 + (-3 if exit_right else 3) * obj.radius, ty0)
                end = (tx0 + (3 if exit_right else -3) * obj.radius, ty0)
                if u < 0.7:
                    cx, cy = obj.center[0] + velocity[i][0] * k, obj.center[1] + velocity[i][1] * k
                    cx, cy = _bounce(cx, obj.radius, size), _bounce(cy, obj.radius, size)
                    w = _smooth(u, 0.55, 0.7)  # drift to the crossing's start
                    cx, cy = cx + (start[0] - cx) * w, cy + (start[1] - cy) * w
                else:
                    cx, cy = start[0] + cross * (end[0] - start[0]), start[1]
            else:
                cx = _bounce(obj.center[0] + velocity[i][0] * k, obj.radius, size)
                cy = _bounce(obj.center[1] + velocity[i][1] * k, obj.radius, size)
            moved = replace(obj, center=(float(cx), float(cy)))
            shapes.append((moved, _shape_mask(moved, size, float(angle0[i] + spin[i] * k))))
        img = background.copy()
        paint_rng = np.random.default_rng(paint_seed * 7919 + k)
        for obj, m in shapes:
            _paint(img, m, obj, paint_rng)
        visible = []
        for i, (_, m) in enumerate(shapes):
            above = np.zeros_like(m)
            for _, later in shapes[i + 1 :]:
                above |= later
            visible.append(m & ~above)
        pil = Image.fromarray(img.round().clip(0, 255).astype(np.uint8)).filter(ImageFilter.SMOOTH)
        frames.append(np.asarray(pil))
        masks.append(np.stack(visible))
    return WorldClip(frames=frames, masks=np.stack(masks), objects=tuple(objects), query=query, occluder=occ)


def _bounce(x: float, r: float, size: int) -> float:
    """``x`` reflected into ``[r, size - r]`` (a shape bouncing off the borders)."""
    lo, hi = r, size - r
    span = hi - lo
    y = (x - lo) % (2 * span)
    return lo + (y if y <= span else 2 * span - y)


def demo_clip(num_frames: int = 30) -> WorldClip:
    """The bundled demo scene (``assets/demo_scene.json``: its generator and instruction) in motion, 448 px.

    The instruction's target (the blue triangle left of the star) leaves through the left border and comes
    back; the red circle crosses in front of it; the other shapes turn in place (``drift=0``), so the
    instruction stays true on every frame where the target is in view. The background and the shapes'
    rotations are new draws, so frame 0 resembles ``demo_scene.png`` without being identical to it.
    """
    import json

    from . import ASSETS
    from .scenes import generate_samples

    meta = json.loads((ASSETS / "demo_scene.json").read_text())
    samples = generate_samples(2024, 8, 448)  # meta["generator"]
    scene, query = next((s, q) for s, q in samples if q.text == meta["text"])
    return animate(scene.objects, query, np.random.default_rng(2024), num_frames, size=448, paint_seed=2024, drift=0.0)
