"""Seg-Zero training data: the dataset layout, its loader, and the mask -> box + two points geometry.

The layout (Seg-Zero's ``refCOCOg_2k_840`` / ``refCOCOg_9k_840``): one row per referring expression with

==============  ==========================================================================================
``id``          string, e.g. ``refcocog_16521``
``problem``     the raw expression / question (the prompt lower-cases it and strips periods)
``solution``    ``<box>(x1,y1),(x2,y2)</box><points>(x,y),(x,y)</points>`` in model-input pixels
``image``       the image already resized to ``S x S`` (840 for Seg-Zero), PNG
``img_height``  original height, ``img_width`` original width
==============  ==========================================================================================

stored as parquet files or as a ``datasets`` ``save_to_disk`` directory. VisionReasoner's multi-object
layout (``Ricky06662/VisionReasoner_multi_object_1k_840``) has the same columns; its ``solution`` is a JSON
list ``[{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}, ...]`` in model-input pixels, one point per
object (``objects_solution``). ``load_seg_zero_dataset`` validates every row (non-empty problem, a solution
of the family's form, an ``S x S`` image), reports and skips the bad ones with counts (never silently), and
adds the conversational ``prompt`` column TRL needs: one user turn whose text is the family's
``segzero_edge.prompt.user_text(problem, family)``; TRL puts the image item before the text, which renders
exactly like ``segzero_edge.prompt.render_chat``.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.errors import TrainingError
from segzero_edge.prompt import SEG_ZERO, VISION_REASONER, user_text

from .rewards import format_solution, parse_solution

logger = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "DataReport",
    "format_solution",
    "load_seg_zero_dataset",
    "mask_box",
    "mask_points",
    "objects_solution",
    "parse_objects_solution",
    "record_geometry",
    "solution_to_answer",
    "training_prompt",
]

#: The columns of the Seg-Zero layout, in order.
COLUMNS: tuple[str, ...] = ("id", "problem", "solution", "image", "img_height", "img_width")
REQUIRED_COLUMNS: tuple[str, ...] = ("problem", "solution", "image")


@dataclass
class DataReport:
    """What happened to the rows of a dataset: how many were kept, and why the others were skipped.

    Attributes:
        total: rows read.
        kept: rows kept.
        skipped: reason -> count.
        examples: reason -> up to 5 row ids (or indices) showing it.
        notes: other counters (e.g. ``points_snapped``).
    """

    total: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: Counter = field(default_factory=Counter)

    def skip(self, reason: str, row_id: Any) -> None:
        self.skipped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 5:
            ex.append(str(row_id))

    def summary(self) -> str:
        parts = [f"{self.kept}/{self.total} rows kept"]
        for reason, n in self.skipped.most_common():
            parts.append(f"{n} skipped: {reason} (e.g. {', '.join(self.examples.get(reason, []))})")
        parts += [f"{k}: {v}" for k, v in sorted(self.notes.items())]
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "kept": self.kept,
            "skipped": dict(self.skipped),
            "examples": self.examples,
            "notes": dict(self.notes),
        }


# --------------------------------------------------------------------------------------------------
# Geometry: mask -> tight box and two inscribed-circle points (segzero_spec.md §5)
# --------------------------------------------------------------------------------------------------


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight inclusive box ``(min x, min y, max x, max y)`` of the True pixels of a 2-D mask."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ValueError("empty mask")
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _snap_to_mask(mask: np.ndarray, x: int, y: int) -> tuple[int, int, bool]:
    """(x, y) if it is on the mask, else the nearest mask pixel (and True)."""
    if mask[y, x]:
        return x, y, False
    ys, xs = np.nonzero(mask)
    i = int(np.argmin((xs - x) ** 2 + (ys - y) ** 2))
    return int(xs[i]), int(ys[i]), True


def mask_points(mask: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """The two "largest inscribed circle" points of a mask, ``((x1, y1), (x2, y2))``.

    Point 1 is the argmax of the Euclidean distance transform (centre of the largest inscribed circle).
    Point 2 is, among the mask pixels farther from point 1 than the median such distance, the one with
    the largest distance-transform value; when there is none (e.g. a one-pixel mask), the EDT argmax in
    a +-10 px window around the mask centroid. A point off the mask is snapped to the nearest mask pixel.
    """
    from scipy.ndimage import distance_transform_edt

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("empty mask")
    edt = distance_transform_edt(mask)
    y1, x1 = np.unravel_index(int(np.argmax(edt)), edt.shape)
    ys, xs = np.nonzero(mask)
    dist = np.hypot(xs - x1, ys - y1)
    far = dist > np.median(dist)
    if far.any():
        fx, fy = xs[far], ys[far]
        i = int(np.argmax(edt[fy, fx]))
        x2, y2 = int(fx[i]), int(fy[i])
    else:
        cy, cx = int(ys.mean()), int(xs.mean())
        y0, x0 = max(cy - 10, 0), max(cx - 10, 0)
        window = edt[y0 : cy + 11, x0 : cx + 11]
        wy, wx = np.unravel_index(int(np.argmax(window)), window.shape)
        x2, y2 = int(x0 + wx), int(y0 + wy)
    x1, y1, _ = _snap_to_mask(mask, int(x1), int(y1))
    x2, y2, _ = _snap_to_mask(mask, x2, y2)
    return (x1, y1), (x2, y2)


def _scale(v: float, factor: float, size: int) -> int:
    """Seg-Zero's coordinate scaling ``int(v * factor + 0.5)``, clipped to the model image."""
    return min(max(int(v * factor + 0.5), 0), size - 1)


def record_geometry(mask: np.ndarray, input_size: int) -> tuple[tuple[int, int, int, int], list[tuple[int, int]], bool]:
    """Box and two points of ``mask`` (original resolution) in ``input_size`` pixels.

    Geometry is computed on the original mask, then scaled with ``int(v * S / W + 0.5)`` (spec §5).
    Each scaled point is checked against the mask resized to ``S x S`` (nearest) and snapped to it
    when it fell off (thin objects); the third value says whether that happened.

    Returns:
        ``(box, [p1, p2], snapped)``.
    """
    from PIL import Image

    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    fx, fy = input_size / w, input_size / h
    bx1, by1, bx2, by2 = mask_box(mask)
    box = (
        _scale(bx1, fx, input_size),
        _scale(by1, fy, input_size),
        _scale(bx2, fx, input_size),
        _scale(by2, fy, input_size),
    )
    small = (
        np.asarray(
            Image.fromarray(mask.astype(np.uint8) * 255).resize((input_size, input_size), Image.Resampling.NEAREST)
        )
        > 127
    )
    points, snapped = [], False
    for px, py in mask_points(mask):
        sx, sy = _scale(px, fx, input_size), _scale(py, fy, input_size)
        if small.any():
            sx, sy, moved = _snap_to_mask(small, sx, sy)
            snapped |= moved
        points.append((sx, sy))
    return box, points, snapped


def solution_to_answer(solution: str) -> str:
    """The ideal completion for a ``solution``: ``<think>…</think><answer>{JSON}</answer>`` (scores 5)."""
    box, points = parse_solution(solution)
    if box is None or points is None:
        raise ValueError(f"not a Seg-Zero solution string: {solution!r}")
    return (
        "<think>The target is the object described.</think>"
        f'<answer>{{"bbox": [{box[0]},{box[1]},{box[2]},{box[3]}], '
        f'"points_1": [{points[0][0]},{points[0][1]}], "points_2": [{points[1][0]},{points[1][1]}]}}</answer>'
    )


# --------------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------------


def training_prompt(problem: str, family: str = SEG_ZERO) -> list[dict[str, str]]:
    """The conversational prompt TRL takes: one user turn with the family's text (image added by TRL)."""
    return [{"role": "user", "content": user_text(problem, family)}]


def parse_objects_solution(solution: Any) -> list[tuple[list[int], list[int]]] | None:
    """The ``(box, point)`` pairs of a VisionReasoner ``solution`` (None when it is not a non-empty JSON list
    of objects with a 4-number ``bbox_2d`` and a 2-number ``point_2d``)."""
    import json

    try:
        items = json.loads(solution)
        out = []
        for item in items:
            box, point = item["bbox_2d"], item["point_2d"]
            if len(box) != 4 or len(point) != 2:
                return None
            out.append(([int(v) for v in box], [int(v) for v in point]))
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
    return out or None


def objects_solution(masks: list[np.ndarray], input_size: int) -> tuple[str, bool]:
    """VisionReasoner's ground truth for the objects' masks (original resolution): per object the tight box
    and the first inscribed-circle point (``record_geometry``) in ``input_size`` pixels, as the JSON list;
    and whether a point had to be snapped onto the resized mask."""
    from .vision_reasoner_rewards import format_objects_solution

    objects, snapped = [], False
    for mask in masks:
        box, points, moved = record_geometry(mask, input_size)
        objects.append((box, points[0]))
        snapped |= moved
    return format_objects_solution(objects), snapped


def _read(path: str, cache_dir: str | None) -> Any:
    import datasets

    p = Path(path)
    if p.is_dir() and (
        (p / "dataset_info.json").exists() or (p / "state.json").exists() or (p / "dataset_dict.json").exists()
    ):
        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            if "train" not in ds:
                raise TrainingError(f"{p} has splits {list(ds)}, no 'train'", hint="point data.train at a split")
            ds = ds["train"]
        return ds
    if p.is_dir() or p.suffix == ".parquet":
        files = sorted(str(f) for f in p.rglob("*.parquet")) if p.is_dir() else [str(p)]
        if not files:
            raise TrainingError(
                f"{p} holds no parquet files and no save_to_disk dataset",
                hint="prepare data with `segzero-edge train prepare-data`",
            )
        return datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=cache_dir)
    if p.exists():
        raise TrainingError(
            f"{p} is neither a parquet file nor a dataset directory",
            hint="give a save_to_disk directory, a parquet file or a folder of them",
        )
    logger.info("data.train %r is not a local path: loading it from the Hugging Face Hub", path)
    return datasets.load_dataset(path, split="train", cache_dir=cache_dir)


def _image_size(value: Any) -> tuple[int, int]:
    from PIL import Image

    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        img = Image.open(io.BytesIO(data)) if data is not None else Image.open(path)
    else:
        img = value
    return img.size


def load_seg_zero_dataset(
    path: str,
    *,
    input_size: int,
    max_rows: int | None = None,
    skip_bad_rows: bool = True,
    cache_dir: str | None = None,
    family: str = SEG_ZERO,
) -> tuple[Any, DataReport]:
    """Load and validate a dataset in the Seg-Zero layout (the family's solutions) and add TRL's ``prompt``.

    Args:
        path: ``save_to_disk`` directory, parquet file, folder of parquet files, or Hub id.
        input_size: the model input size S; every image must be S x S (its solution is in that frame).
        max_rows: keep only the first N rows.
        skip_bad_rows: skip invalid rows (reported); False raises on the first one.
        cache_dir: ``datasets`` cache for parquet / Hub loads.
        family: ``seg_zero`` (box + two points solutions) or ``vision_reasoner`` (JSON object lists).

    Returns:
        ``(dataset, report)``; the dataset keeps every original column plus ``prompt``.

    Raises:
        TrainingError: missing columns, no valid row, or a bad row with ``skip_bad_rows=False``.
    """
    import datasets

    ds = _read(path, cache_dir)
    missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
    if missing:
        raise TrainingError(
            f"{path}: missing column(s) {missing} (has {ds.column_names})",
            hint=f"the Seg-Zero layout has columns {list(COLUMNS)}",
        )
    if max_rows is not None and max_rows < len(ds):
        ds = ds.select(range(max_rows))
    report = DataReport(total=len(ds))
    ids = list(ds["id"]) if "id" in ds.column_names else [str(i) for i in range(len(ds))]
    raw = ds.select_columns(["problem", "solution", "image"])
    if isinstance(raw.features.get("image"), datasets.Image):
        raw = raw.cast_column("image", datasets.Image(decode=False))  # read image headers, not pixels
    rows = (row for batch in raw.iter(batch_size=64) for row in zip(*batch.values(), strict=True))
    good: list[int] = []
    for i, (problem, solution, image) in enumerate(rows):
        reason = None
        if not isinstance(problem, str) or not problem.strip():
            reason = "empty problem"
        elif family == VISION_REASONER and parse_objects_solution(solution) is None:
            reason = 'solution not a JSON list of {"bbox_2d": [4 numbers], "point_2d": [2 numbers]} objects'
        elif family != VISION_REASONER and None in parse_solution(solution):
            reason = "solution not in <box>(x1,y1),(x2,y2)</box><points>(x,y),(x,y)</points> form"
        else:
            try:
                size = _image_size(image)
                if size != (input_size, input_size):
                    reason = f"image is not {input_size}x{input_size} (model input size)"
            except Exception as exc:
                reason = f"unreadable image ({type(exc).__name__})"
        if reason is None:
            good.append(i)
            continue
        if not skip_bad_rows:
            raise TrainingError(
                f"{path}: row {ids[i]}: {reason}",
                hint="fix the row, or set data.skip_bad_rows=true to skip bad rows",
            )
        report.skip(reason, ids[i])
    report.kept = len(good)
    if report.skipped:
        logger.warning("training data %s: %s", path, report.summary())
    else:
        logger.info("training data %s: %s", path, report.summary())
    if not good:
        raise TrainingError(
            f"{path}: no usable row ({report.summary()})",
            hint=f"prepare the data for input size {input_size}: "
            f"segzero-edge train prepare-data ... --input-size {input_size}",
        )
    prompts = [training_prompt(p if isinstance(p, str) else "", family) for p in ds["problem"]]
    ds = ds.add_column("prompt", prompts)
    if len(good) < len(ds):
        ds = ds.select(good)
    return ds, report
