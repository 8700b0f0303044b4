"""A seeded world of synthetic scenes and referring queries with ground-truth masks.

Each scene is an image with several coloured shapes (optionally textured, overlapping, on a cluttered
background). Each query refers to exactly one shape and needs a little reasoning:

* ``attribute``    "the red circle", "the triangle", "the blue shape"
* ``relation``     "the square left of the green circle", "the shape closest to the yellow star"
* ``superlative``  "the largest shape", "the smallest red shape", "the leftmost shape"
* ``indirect``     "the shape with the same colour as the triangle"

Queries are kept only when their answer is unambiguous (with margins on sizes and distances), and each
comes with a templated chain of thought that names the evidence, for supervised warm-starting.
Ground truth is the *visible* mask of the target (shapes drawn later occlude earlier ones).
Everything is a pure function of the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 45, 45),
    "green": (45, 165, 70),
    "blue": (50, 90, 215),
    "yellow": (235, 200, 45),
    "purple": (140, 70, 180),
    "orange": (240, 135, 35),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "hexagon")
KINDS: tuple[str, ...] = ("attribute", "relation", "superlative", "indirect")


@dataclass(frozen=True)
class SceneObject:
    """One shape: its kind, colour name, centre ``(x, y)`` and radius in pixels, and texture."""

    shape: str
    color: str
    center: tuple[float, float]
    radius: float
    texture: str = "flat"

    def describe(self) -> str:
        return f"{self.color} {self.shape}"


@dataclass(frozen=True, eq=False)
class Scene:
    """A rendered scene.

    Attributes:
        image: ``(S, S, 3)`` uint8 RGB.
        objects: the shapes, in drawing order (later ones occlude earlier ones).
        masks: visible mask of each object, ``(S, S)`` bool, same order as ``objects``.
    """

    image: np.ndarray
    objects: tuple[SceneObject, ...]
    masks: tuple[np.ndarray, ...]

    def area(self, i: int) -> int:
        return int(self.masks[i].sum())


@dataclass(frozen=True)
class Query:
    """A referring expression with its unique target (index into ``Scene.objects``).

    ``mentions``: the spans of ``reasoning`` that describe one object, as ``(start, end, object index)``
    character offsets (``reasoning[start:end]``): every inventory item (``"a red star at the top"``), the
    reference object of a relation or indirect query (``"The star is at the top"``) and the final naming
    of the target (``"the blue triangle"``), in text order. The SFT's attention supervision reads them.
    """

    text: str
    target: int
    kind: str
    reasoning: str
    mentions: tuple[tuple[int, int, int], ...] = ()


Mention = tuple[str, int]


def _compose(*parts: str | Mention) -> tuple[str, tuple[tuple[int, int, int], ...]]:
    """Join text parts; a ``(text, object index)`` part is recorded as a mention ``(start, end, index)``."""
    out, spans, pos = [], [], 0
    for part in parts:
        text, obj = (part, None) if isinstance(part, str) else part
        if obj is not None:
            spans.append((pos, pos + len(text), obj))
        out.append(text)
        pos += len(text)
    return "".join(out), tuple(spans)


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    def ring(n, radius, phase=0.0):
        return [
            (
                cx + radius * math.cos(phase + angle + 2 * math.pi * k / n),
                cy + radius * math.sin(phase + angle + 2 * math.pi * k / n),
            )
            for k in range(n)
        ]

    if shape == "square":
        return ring(4, r * 1.25, math.pi / 4)
    if shape == "triangle":
        return ring(3, r * 1.3, -math.pi / 2)
    if shape == "diamond":
        return ring(4, r * 1.2)
    if shape == "hexagon":
        return ring(6, r * 1.1)
    if shape == "star":
        outer, inner = ring(5, r * 1.35, -math.pi / 2), ring(5, r * 0.6, -math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner) for p in pair]
    raise ValueError(f"unknown shape {shape!r}")


def _shape_mask(obj: SceneObject, size: int, angle: float) -> np.ndarray:
    layer = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(layer)
    cx, cy = obj.center
    if obj.shape == "circle":
        draw.ellipse([cx - obj.radius, cy - obj.radius, cx + obj.radius, cy + obj.radius], fill=255)
    else:
        draw.polygon(_polygon(obj.shape, cx, cy, obj.radius, angle), fill=255)
    return np.asarray(layer) > 127


def _background(rng: np.random.Generator, size: int, clutter: bool) -> np.ndarray:
    base = rng.integers(150, 235, 3).astype(np.float32)
    ramp = np.linspace(-18, 18, size, dtype=np.float32)
    img = np.broadcast_to(base, (size, size, 3)).copy() + ramp[None, :, None] * rng.uniform(-1, 1)
    img += rng.normal(0, 4.0, (size, size, 3))
    if clutter:  # small grey specks and thin lines that are not shapes of the query vocabulary
        pil = Image.fromarray(img.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(pil)
        for _ in range(int(rng.integers(4, 10))):
            x, y = rng.uniform(0, size, 2)
            g = int(rng.integers(90, 200))
            if rng.random() < 0.5:
                draw.line(
                    [x, y, x + rng.uniform(-size / 5, size / 5), y + rng.uniform(-size / 5, size / 5)],
                    fill=(g, g, g),
                    width=1,
                )
            else:
                s = rng.uniform(1, size / 60 + 1)
                draw.ellipse([x - s, y - s, x + s, y + s], fill=(g, g, g))
        img = np.asarray(pil, np.float32)
    return img


def _paint(img: np.ndarray, mask: np.ndarray, obj: SceneObject, rng: np.random.Generator) -> None:
    color = np.asarray(COLORS[obj.color], np.float32)
    ys, xs = np.nonzero(mask)
    if obj.texture == "stripes":
        shade = np.where(((xs + ys) // 4) % 2 == 0, 1.0, 0.82)[:, None]
    elif obj.texture == "noise":
        shade = rng.uniform(0.85, 1.1, (len(xs), 1))
    else:
        shade = np.ones((len(xs), 1))
    img[ys, xs] = (color[None, :] * shade).clip(0, 255)


def generate_scene(
    rng: np.random.Generator,
    size: int = 224,
    *,
    n_objects: tuple[int, int] = (3, 6),
    textures: bool = True,
    overlap: bool = True,
    clutter: bool = True,
    min_visible: float = 0.65,
) -> Scene:
    """Render one scene of ``size x size`` pixels with ``n_objects`` (inclusive range) shapes."""
    for _ in range(100):  # resample layouts where an object ends up mostly hidden
        n = int(rng.integers(n_objects[0], n_objects[1] + 1))
        objects, full = [], []
        for _ in range(n):
            r = float(rng.uniform(size * 0.06, size * 0.16))
            for _ in range(50):
                c = tuple(float(v) for v in rng.uniform(r * 1.2, size - r * 1.2, 2))
                far = all(math.dist(c, o.center) > (0.6 if overlap else 1.4) * (r + o.radius) for o in objects)
                if far:
                    break
            obj = SceneObject(
                shape=str(rng.choice(SHAPES)),
                color=str(rng.choice(list(COLORS))),
                center=c,
                radius=r,
                texture=str(rng.choice(["flat", "stripes", "noise"])) if textures else "flat",
            )
            objects.append(obj)
            full.append(_shape_mask(obj, size, float(rng.uniform(0, math.pi / 6))))
        visible = []
        for i, m in enumerate(full):
            above = np.zeros_like(m)
            for later in full[i + 1 :]:
                above |= later
            visible.append(m & ~above)
        if all(v.sum() >= min_visible * f.sum() and f.sum() > 0 for v, f in zip(visible, full)):
            break
    img = _background(rng, size, clutter)
    for obj, m in zip(objects, full):
        _paint(img, m, obj, rng)
    pil = Image.fromarray(img.round().clip(0, 255).astype(np.uint8)).filter(ImageFilter.SMOOTH)
    return Scene(np.asarray(pil), tuple(objects), tuple(visible))


def _where(obj: SceneObject, size: int) -> str:
    x, y = obj.center
    horiz = "left" if x < size / 3 else "right" if x > 2 * size / 3 else "middle"
    vert = "top" if y < size / 3 else "bottom" if y > 2 * size / 3 else "centre"
    return f"{vert} {horiz}" if horiz != "middle" else f"{vert}"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _reading_order(obj: SceneObject, size: int) -> tuple[int, float]:
    """Sort key: the vertical third of the centre (top, centre, bottom), then x: the order a reader scans."""
    return min(int(3 * obj.center[1] / size), 2), obj.center[0]


def visible_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Inclusive pixel box ``(x1, y1, x2, y2)`` of a visible mask (the Seg-Zero box of that mask)."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _inventory(scene: Scene, size: int, boxes: bool = False) -> list[str | Mention]:
    """The think's first sentence as ``_compose`` parts, each shape a mention."""
    # Reading order, not drawing order: the list is then a function of the image alone, so a model can
    # learn to produce it (drawing order is hidden state of the generator).
    order = sorted(range(len(scene.objects)), key=lambda k: _reading_order(scene.objects[k], size))
    parts: list[str | Mention] = [f"I see {len(order)} shapes: "]
    for n, k in enumerate(order):
        o = scene.objects[k]
        box = " [{},{},{},{}]".format(*visible_box(scene.masks[k])) if boxes else ""
        parts += [", "] if n else []
        parts.append((f"{_article(o.color)} {o.describe()} at the {_where(o, size)}{box}", k))
    return [*parts, ". "]


def _name(scene: Scene, i: int) -> str | None:
    """The shortest unambiguous name of object ``i``: shape, colour + 'shape', or colour + shape."""
    objs = scene.objects
    o = objs[i]
    if sum(x.shape == o.shape for x in objs) == 1:
        return f"the {o.shape}"
    if sum(x.color == o.color for x in objs) == 1:
        return f"the {o.color} shape"
    if sum(x.shape == o.shape and x.color == o.color for x in objs) == 1:
        return f"the {o.color} {o.shape}"
    return None


def generate_queries(scene: Scene, rng: np.random.Generator, size: int, *, think_boxes: bool = False) -> list[Query]:
    """Every unambiguous query of each kind that this scene supports (at most one per kind).

    ``think_boxes``: the think's inventory gives each shape's visible box in scene pixels,
    ``[x1,y1,x2,y2]`` (the same random draws either way).
    """
    objs, n = scene.objects, len(scene.objects)
    areas = [scene.area(i) for i in range(n)]
    inv = _inventory(scene, size, think_boxes)
    out: list[Query] = []

    named = [i for i in range(n) if _name(scene, i)]

    def query(text: str, target: int, kind: str, *why: str | Mention) -> Query:
        return Query(text, target, kind, *_compose(*inv, *why))

    if named:
        i = int(rng.choice(named))
        out.append(
            query(
                _name(scene, i),
                i,
                "attribute",
                f"Only one matches {_name(scene, i)}: ",
                (f"the {objs[i].describe()} at the {_where(objs[i], size)}", i),
                ".",
            )
        )

    rel = []
    for ref in named:
        rname = _name(scene, ref)
        for side, test in (
            ("left of", lambda a, b: a[0] < b[0] - 0.5 * size / 10),
            ("right of", lambda a, b: a[0] > b[0] + 0.5 * size / 10),
            ("above", lambda a, b: a[1] < b[1] - 0.5 * size / 10),
            ("below", lambda a, b: a[1] > b[1] + 0.5 * size / 10),
        ):
            for shape in sorted({o.shape for o in objs}):  # sorted: set order varies between processes
                hits = [
                    j
                    for j in range(n)
                    if j != ref and objs[j].shape == shape and test(objs[j].center, objs[ref].center)
                ]
                if len(hits) == 1:
                    why = (
                        (f"{rname.capitalize()} is at the {_where(objs[ref], size)}", ref),
                        f"; the only {shape} {side} it is ",
                        (f"the {objs[hits[0]].describe()}", hits[0]),
                        ".",
                    )
                    rel.append((f"the {shape} {side} {rname}", hits[0], why))
        dists = sorted((math.dist(objs[j].center, objs[ref].center), j) for j in range(n) if j != ref)
        if len(dists) >= 2 and dists[1][0] > 1.3 * dists[0][0]:
            j = dists[0][1]
            why = (
                (f"{rname.capitalize()} is at the {_where(objs[ref], size)}", ref),
                "; the nearest shape to it is ",
                (f"the {objs[j].describe()}", j),
                ".",
            )
            rel.append((f"the shape closest to {rname}", j, why))
    if rel:
        text, j, why = rel[int(rng.integers(len(rel)))]
        out.append(query(text, j, "relation", *why))

    sup = []
    order = sorted(range(n), key=lambda k: areas[k])
    if n >= 2 and areas[order[-1]] > 1.25 * areas[order[-2]]:
        sup.append(("the largest shape", order[-1], "largest"))
    if n >= 2 and areas[order[1]] > 1.25 * areas[order[0]]:
        sup.append(("the smallest shape", order[0], "smallest"))
    for axis, lo, hi in ((0, "leftmost", "rightmost"), (1, "topmost", "bottommost")):
        pos = sorted(range(n), key=lambda k: objs[k].center[axis])
        if n >= 2 and objs[pos[1]].center[axis] - objs[pos[0]].center[axis] > size / 12:
            sup.append((f"the {lo} shape", pos[0], lo))
        if n >= 2 and objs[pos[-1]].center[axis] - objs[pos[-2]].center[axis] > size / 12:
            sup.append((f"the {hi} shape", pos[-1], hi))
    if sup:
        text, j, word = sup[int(rng.integers(len(sup)))]
        out.append(
            query(text, j, "superlative", f"Comparing them, the {word} one is ", (f"the {objs[j].describe()}", j), ".")
        )

    ind = []
    for ref in named:
        same = [j for j in range(n) if j != ref and objs[j].color == objs[ref].color]
        if len(same) == 1:
            ind.append(
                (
                    f"the shape with the same colour as {_name(scene, ref)}",
                    same[0],
                    (
                        (f"{_name(scene, ref).capitalize()} is {objs[ref].color}", ref),
                        f"; the other {objs[ref].color} shape is ",
                        (f"the {objs[same[0]].shape}", same[0]),
                        ".",
                    ),
                )
            )
    if ind:
        text, j, why = ind[int(rng.integers(len(ind)))]
        out.append(query(text, j, "indirect", *why))
    return out


def generate_samples(
    seed: int, count: int, size: int = 224, *, think_boxes: bool = False, **scene_kwargs
) -> list[tuple[Scene, Query]]:
    """``count`` (scene, query) pairs from ``seed``, cycling through the query kinds evenly."""
    rng = np.random.default_rng(seed)
    samples: list[tuple[Scene, Query]] = []
    while len(samples) < count:
        scene = generate_scene(rng, size, **scene_kwargs)
        queries = {q.kind: q for q in generate_queries(scene, rng, size, think_boxes=think_boxes)}
        want = KINDS[len(samples) % len(KINDS)]
        if want in queries:
            samples.append((scene, queries[want]))
    return samples
