"""Instructions that mean several shapes, for the world's VisionReasoner-family reasoner.

Kinds (each kept only when its answer is unambiguous and names at least two shapes):

* ``color``  "all the red shapes"
* ``shape``  "every triangle"
* ``side``   "the shapes left of the star" (a uniquely named reference; every other shape lies clearly on
  one side of it or clearly not, by ``size / 20`` pixels)

The training split also carries the single-object queries of ``scenes.generate_queries`` (every fourth
sample), answered as lists of one, so one model serves both. Ground truth is one visible mask per target.

The think is short and names only what the answer needs: the targets (colour and shape, in reading order, the
order of the answer list) and the reference of a ``side`` query; single-object queries keep the part of the
templated reasoning after the scene inventory. ``faithfulness`` measures a think against its scene: whether it
names every target, and whether every shape it names exists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segzero_edge.errors import InputError

from . import SCENE_SIZE, Split
from .scenes import COLORS, SHAPES, Scene, _name, _reading_order, _where, generate_queries, generate_scene

MULTI_KINDS: tuple[str, ...] = ("color", "shape", "side")
#: The multi-object splits; the train split mixes in single-object queries (every fourth sample).
MULTI_SPLITS: dict[str, Split] = {
    "multi_train": Split("multi_train", seed=95_000, count=3000),
    "multi_val": Split("multi_val", seed=96_000, count=200),
    "multi_test": Split("multi_test", seed=97_000, count=200),
}
VR_DIR = "train_vr"
#: Generation settings of the multi-object reasoner (its table and the demo): the world's answers list up to 6 shapes in
#: 59-335 tokens; 8 objects reserve 20 + 40 x 8 = 340 tokens for a constrained answer, so the think may use
#: 172 of the 512 (its own 15-70 tokens fit).
MAX_NEW_TOKENS = 512
MAX_OBJECTS = 8
_MENTION = re.compile(r"\b(" + "|".join(COLORS) + r") (" + "|".join(SHAPES) + r")s?\b")


@dataclass(frozen=True)
class MultiQuery:
    """An instruction with its targets (indices into ``Scene.objects``, in answer order)."""

    text: str
    targets: tuple[int, ...]
    kind: str
    reasoning: str


def _plural(shape: str) -> str:
    return shape + "es" if shape.endswith("x") else shape + "s"


def _listing(scene: Scene, targets: list[int], size: int) -> str:
    names = [f"the {scene.objects[k].describe()} at the {_where(scene.objects[k], size)}" for k in targets]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def generate_multi_queries(scene: Scene, rng: np.random.Generator, size: int) -> list[MultiQuery]:
    """Every supported multi-object query of this scene, at most one per kind."""
    objs, n = scene.objects, len(scene.objects)

    def ordered(ks) -> list[int]:
        return sorted(ks, key=lambda k: _reading_order(objs[k], size))

    out: list[MultiQuery] = []
    colors = sorted({o.color for o in objs if sum(x.color == o.color for x in objs) >= 2})
    if colors:
        c = colors[int(rng.integers(len(colors)))]
        t = ordered(k for k in range(n) if objs[k].color == c)
        out.append(
            MultiQuery(f"all the {c} shapes", tuple(t), "color", f"The {c} shapes are {_listing(scene, t, size)}.")
        )
    shapes = sorted({o.shape for o in objs if sum(x.shape == o.shape for x in objs) >= 2})
    if shapes:
        s = shapes[int(rng.integers(len(shapes)))]
        t = ordered(k for k in range(n) if objs[k].shape == s)
        out.append(MultiQuery(f"every {s}", tuple(t), "shape", f"The {_plural(s)} are {_listing(scene, t, size)}."))
    sides = []
    margin = size / 20
    for ref in range(n):
        rname = _name(scene, ref)
        if rname is None:
            continue
        rc = objs[ref].center
        for word, axis, sign in (("left of", 0, -1), ("right of", 0, 1), ("above", 1, -1), ("below", 1, 1)):
            offsets = [sign * (objs[k].center[axis] - rc[axis]) for k in range(n) if k != ref]
            if any(abs(d) <= margin for d in offsets):
                continue  # a shape too close to the dividing line
            t = ordered(k for k in range(n) if k != ref and sign * (objs[k].center[axis] - rc[axis]) > margin)
            if len(t) >= 2:
                why = (
                    f"{rname.capitalize()} is the {objs[ref].describe()} at the {_where(objs[ref], size)}; "
                    f"{word} it are {_listing(scene, t, size)}."
                )
                sides.append(MultiQuery(f"the shapes {word} {rname}", tuple(t), "side", why))
    if sides:
        out.append(sides[int(rng.integers(len(sides)))])
    return out


def _short_single(reasoning: str) -> str:
    """A single-object query's templated reasoning without its scene inventory (the first sentence)."""
    head, sep, rest = reasoning.partition(". ")
    return rest if sep and head.startswith("I see") else reasoning


def generate_multi_samples(
    seed: int, count: int, size: int = SCENE_SIZE, *, with_single: bool = False
) -> list[tuple[Scene, MultiQuery]]:
    """``count`` (scene, query) pairs from ``seed``, cycling through the kinds (and ``single`` every fourth
    sample when ``with_single``)."""
    kinds = (*MULTI_KINDS, "single") if with_single else MULTI_KINDS
    rng = np.random.default_rng(seed)
    out: list[tuple[Scene, MultiQuery]] = []
    while len(out) < count:
        scene = generate_scene(rng, size, n_objects=(3, 7))
        want = kinds[len(out) % len(kinds)]
        if want == "single":
            queries = generate_queries(scene, rng, size)
            if queries:
                q = queries[int(rng.integers(len(queries)))]
                out.append((scene, MultiQuery(q.text, (q.target,), f"single_{q.kind}", _short_single(q.reasoning))))
            continue
        found = {q.kind: q for q in generate_multi_queries(scene, rng, size)}
        if want in found:
            out.append((scene, found[want]))
    return out


def faithfulness(think: str | None, objects: list[dict], targets: list[int]) -> dict[str, bool]:
    """How a think relates to its scene (``objects``: ``{"color", "shape"}`` per object).

    Returns ``{"names_targets": every target's "<colour> <shape>" appears, "no_invented": every "<colour>
    <shape>" it names exists in the scene, "faithful": both}``.
    """
    named = {(m.group(1), m.group(2)) for m in _MENTION.finditer((think or "").lower())}
    present = {(o["color"], o["shape"]) for o in objects}
    wanted = {(objects[k]["color"], objects[k]["shape"]) for k in targets}
    names_targets = wanted <= named
    no_invented = named <= present
    return {"names_targets": names_targets, "no_invented": no_invented, "faithful": names_targets and no_invented}


def write_multi_split(name: str, out_dir: str | Path, *, count: int | None = None) -> Path:
    """Write ``MULTI_SPLITS[name]`` as an index folder: one mask file per target (``"masks"``, answer order),
    the scene's ``objects`` and ``targets``, and the short ``reasoning``. Returns the folder."""
    from PIL import Image

    from .dataset import pick_split

    split, n = pick_split(MULTI_SPLITS, name, count)
    root = Path(out_dir) / name
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    records = []
    # generate_multi_samples(seed, n) is a prefix of the full split
    for i, (scene, q) in enumerate(generate_multi_samples(split.seed, n, with_single=name == "multi_train")):
        rid = f"{name}_{i:05d}"
        Image.fromarray(scene.image).save(root / "images" / f"{rid}.png", optimize=False, compress_level=6)
        masks = []
        for j, k in enumerate(q.targets):
            path = f"masks/{rid}_{j}.png"
            mask = scene.masks[k].astype(np.uint8) * 255
            Image.fromarray(mask, mode="L").save(root / path, optimize=False, compress_level=6)
            masks.append(path)
        records.append(
            {
                "id": rid,
                "image": f"images/{rid}.png",
                "masks": masks,
                "objects": [{"color": o.color, "shape": o.shape} for o in scene.objects],
                "targets": list(q.targets),
                "text": q.text,
                "kind": q.kind,
                "reasoning": q.reasoning,
            }
        )
    (root / "index.json").write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
    return root


def write_multi_dataset(out_dir: str | Path, *, input_size: int, counts: dict[str, int] | None = None) -> dict:
    """Every multi-object split, and the train split in VisionReasoner's layout at ``input_size``
    (``out/train_vr``, by ``prepare_dataset(family="vision_reasoner")``)."""
    from segzero_edge.training.prepare import prepare_dataset

    out = Path(out_dir)
    written = {name: write_multi_split(name, out, count=(counts or {}).get(name)) for name in MULTI_SPLITS}
    report = prepare_dataset(
        "index",
        written["multi_train"],
        out / VR_DIR,
        input_size=input_size,
        resample="bilinear",
        shard_rows=1000,
        family="vision_reasoner",
    )
    if report.skipped:
        raise InputError(f"prepare_dataset skipped world records: {report.summary()}", hint="report it")
    written[VR_DIR] = out / VR_DIR
    return written
