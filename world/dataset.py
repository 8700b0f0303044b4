"""The world's splits on disk: raw index folders (for evaluation) and the Seg-Zero training layout.

``write_split(name, out)`` writes one split of ``SPLITS`` as the generic *index* layout that
``training.prepare.iter_index`` reads (and that ``segzero-edge eval`` reads)::

    out/<split>/images/<id>.png      the scene, SCENE_SIZE x SCENE_SIZE RGB
    out/<split>/masks/<id>.png       the visible GT mask of the target (L, 0 / 255)
    out/<split>/labels/<id>.png      every object's visible mask (L, pixel k + 1 = object k, 0 = none)
    out/<split>/index.json           [{"id", "image", "mask", "labels", "objects", "text", "kind", "reasoning",
                                       "mentions"}, ...]

``objects`` lists ``{"color", "shape"}`` of every object in label order (drawing order). ``labels`` and
``objects`` are the scene's full annotation (like a panoptic label): the SFT's grounding loss reads them
(``world.grounding``); evaluation and ``prepare_dataset`` only need ``mask``.

``reasoning`` is the scene generator's templated chain of thought (used for supervised warm-starting);
readers that do not know it ignore it. ``mentions`` lists the spans of ``reasoning`` that describe one
object, ``[start, end, k]`` (character offsets; ``k`` indexes ``objects`` and ``labels``), for the SFT's
attention supervision (``world.scenes.Query.mentions``). ``write_world_dataset`` writes every split
and converts the train split with our own ``prepare_dataset`` (Seg-Zero's box and point rules) to
``out/train_segzero`` at the reasoner's input size. Everything is a pure function of the split seeds: the
same call writes the same bytes (PNG via PIL with fixed settings, JSON with sorted keys, parquet without
timestamps).

Coordinates: masks are in scene pixels (``x`` right, ``y`` down); the Seg-Zero layout stores the box and
points in model-input pixels (``S x S``), which equal scene pixels when ``S == SCENE_SIZE``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segzero_edge.errors import InputError

from . import SCENE_SIZE, SPLITS

logger = logging.getLogger(__name__)

INDEX_FILE = "index.json"
SEGZERO_DIR = "train_segzero"


@dataclass(frozen=True)
class SplitFiles:
    """What ``write_split`` wrote: the split folder, its index file and the number of records."""

    root: Path
    index: Path
    count: int


def _progress(iterable, total: int, desc: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with transformers
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False)


def pick_split(splits: dict, name: str, count: int | None) -> tuple:
    """``(splits[name], number of samples)`` for the first ``count`` samples (default all); ``InputError``
    for an unknown split or a count outside 1..the split's size."""
    if name not in splits:
        raise InputError(f"unknown split {name!r}", hint=f"use one of {', '.join(splits)}")
    split = splits[name]
    n = split.count if count is None else int(count)
    if not 1 <= n <= split.count:
        raise InputError(f"count must be in 1..{split.count} for split {name}, got {count!r}")
    return split, n


def write_split(name: str, out_dir: str | Path, *, count: int | None = None, think_boxes: bool = False) -> SplitFiles:
    """Write split ``name`` of ``SPLITS`` (first ``count`` samples, default all) to ``out_dir/name``.

    ``think_boxes``: the templated reasoning gives every shape's box (``world.scenes.generate_queries``);
    the scenes, queries and masks are the same either way.

    Record ids are ``<split>_<index:05d>``. Returns the folder, index path and record count.
    """
    from PIL import Image

    from .scenes import generate_samples

    split, n = pick_split(SPLITS, name, count)
    root = Path(out_dir) / name
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    # generate_samples(seed, n) is a prefix of generate_samples(seed, count): the first n are the same.
    samples = generate_samples(split.seed, n, SCENE_SIZE, think_boxes=think_boxes)
    records = []
    for i, (scene, query) in enumerate(_progress(samples, n, f"split {name}")):
        rid = f"{name}_{i:05d}"
        Image.fromarray(scene.image).save(root / "images" / f"{rid}.png", optimize=False, compress_level=6)
        mask = scene.masks[query.target].astype(np.uint8) * 255
        Image.fromarray(mask, mode="L").save(root / "masks" / f"{rid}.png", optimize=False, compress_level=6)
        labels = np.zeros(mask.shape, np.uint8)
        for k, m in enumerate(scene.masks):
            labels[m] = k + 1
        Image.fromarray(labels, mode="L").save(root / "labels" / f"{rid}.png", optimize=False, compress_level=6)
        records.append(
            {
                "id": rid,
                "image": f"images/{rid}.png",
                "mask": f"masks/{rid}.png",
                "labels": f"labels/{rid}.png",
                "objects": [{"color": o.color, "shape": o.shape} for o in scene.objects],
                "text": query.text,
                "kind": query.kind,
                "reasoning": query.reasoning,
                "mentions": [list(m) for m in query.mentions],
            }
        )
    index = root / INDEX_FILE
    index.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
    logger.info("world split %s: %d records -> %s", name, n, root)
    return SplitFiles(root, index, n)


def read_index(split_dir: str | Path) -> list[dict]:
    """The records of a split folder written by ``write_split``."""
    path = Path(split_dir) / INDEX_FILE
    if not path.exists():
        raise InputError(
            f"{path} does not exist",
            hint="write the split with `python -m segzero_edge.world dataset --out DIR`",
        )
    return json.loads(path.read_text())


def write_world_dataset(
    out_dir: str | Path,
    *,
    input_size: int,
    splits: tuple[str, ...] = tuple(SPLITS),
    counts: dict[str, int] | None = None,
) -> dict[str, Path]:
    """Write ``splits`` as index folders and the train split in the Seg-Zero layout at ``input_size``.

    Args:
        out_dir: destination; gets one folder per split and ``train_segzero/`` (parquet + report).
        input_size: the reasoner's model input size S (read it from the checkpoint's segzero_edge.json).
        splits: which splits to write.
        counts: optional smaller counts per split (tests); prefixes of the full splits.

    Returns:
        ``{split name: folder}`` plus ``"train_segzero"`` when the train split was written.
    """
    from segzero_edge.training.prepare import prepare_dataset

    out = Path(out_dir)
    written: dict[str, Path] = {}
    for name in splits:
        written[name] = write_split(name, out, count=(counts or {}).get(name)).root
    if "train" in splits:
        # Scenes are SCENE_SIZE pixels; at S == SCENE_SIZE the resize is the identity.
        report = prepare_dataset(
            "index", written["train"], out / SEGZERO_DIR, input_size=input_size, resample="bilinear", shard_rows=1000
        )
        if report.skipped:
            raise InputError(
                f"prepare_dataset skipped {report.skipped} world records: {report.summary()}",
                hint="the scene generator produced an invalid record; report it",
            )
        written[SEGZERO_DIR] = out / SEGZERO_DIR
    return written
