"""``segzero-edge train prepare-data``: referring / reasoning segmentation data -> the Seg-Zero layout.

Three source layouts are read:

``index``
    a folder plus a JSON index (``index.json`` by default): a list of records, or ``{"records": [...]}``,
    each ``{"image": "rel/path.jpg", "mask": "rel/mask.png", "problem": "..."}``. ``problem`` may be
    replaced by ``expression`` (one string) or ``expressions`` / ``sentences`` (a list: one row each);
    ``id`` is optional. Masks are images of the same size as the image; non-zero pixels are the object.
``refcoco``
    the RefCOCO / RefCOCO+ / RefCOCOg release: ``refs(<split_by>).p`` + ``instances.json`` in the root,
    COCO images under ``images/`` (or ``train2014/``, or ``--image-dir``). Masks come from the COCO
    annotation (polygons rasterised with PIL, RLE decoded); one row per sentence of each ref of ``--split``.
``reasonseg``
    LISA's ReasonSeg: ``<name>.jpg`` with ``<name>.json`` (``text``: list of queries, ``shapes``: labelled
    polygons). Polygons are painted largest first; ``target`` pixels are the object, ``ignore`` regions
    are not (they are neither target nor background in ReasonSeg's evaluation); one row per query.

Each image is resized to ``S x S`` (``--input-size``, default 840; ``--resample area`` as in Seg-Zero's
data script, or ``bilinear`` as at inference) and each mask gives the tight box and two points
(``data.record_geometry``). ``--family vision_reasoner`` writes VisionReasoner's multi-object layout instead:
the solution is the JSON list of the objects' boxes with one point each (``data.objects_solution``); index
records give one mask per object as ``"masks": [...]`` (a single ``mask`` is a list of one object).
Bad records (unreadable image, mask of another size, empty mask, no text)
are reported and skipped with counts; the report is also written to ``prepare_report.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from pathlib import Path
from typing import Any

from segzero_edge.errors import DatasetError, InputError

# The mask and record readers live in the runtime (``segzero-edge eval`` reads the same layouts); they are
# re-exported here under their former names.
from segzero_edge.evaluation.datasets import Item, iter_index, iter_reasonseg, iter_refcoco
from segzero_edge.evaluation.masks import (
    coco_segmentation_to_mask,
    polygons_to_mask,
    reasonseg_mask,
    rle_to_mask,
)

from .data import DataReport, objects_solution, record_geometry
from .rewards import format_solution

logger = logging.getLogger(__name__)

SOURCES = ("index", "refcoco", "reasonseg")
RESAMPLE = {"area": "BOX", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "nearest": "NEAREST"}

__all__ = [
    "SOURCES",
    "BadRecord",
    "Item",
    "coco_segmentation_to_mask",
    "convert_item",
    "iter_index",
    "iter_reasonseg",
    "iter_refcoco",
    "polygons_to_mask",
    "prepare_dataset",
    "reasonseg_mask",
    "rle_to_mask",
]


class BadRecord(Exception):
    """A record that cannot be converted; the message is the reason counted in the report."""


# --------------------------------------------------------------------------------------------------
# Conversion and writing
# --------------------------------------------------------------------------------------------------


def convert_item(
    item: Item, input_size: int, resample: str, report: DataReport, family: str = "seg_zero"
) -> list[dict[str, Any]]:
    """Rows of the family's layout for one image (one per text), or [] with the reason in ``report``."""
    from PIL import Image

    rid, image_path, mask_loader, texts = item
    texts = [t for t in texts if t and t.strip()]
    try:
        if mask_loader is None:
            raise BadRecord("record without image, mask or annotation")
        if not texts:
            raise BadRecord("no expression text")
        try:
            with Image.open(image_path) as im:
                image = im.convert("RGB")
        except Exception as exc:
            raise BadRecord(f"unreadable image ({type(exc).__name__})") from exc
        try:
            mask = mask_loader()
        except BadRecord:
            raise
        except DatasetError as exc:
            raise BadRecord(exc.message) from exc
        except Exception as exc:
            raise BadRecord(f"unreadable mask ({type(exc).__name__})") from exc
        masks = list(mask) if mask.ndim == 3 else [mask]
        if any(m.shape != (image.height, image.width) for m in masks):
            raise BadRecord("mask size differs from image size")
        if not all(m.any() for m in masks):
            raise BadRecord("empty mask")
        if family != "vision_reasoner" and len(masks) > 1:
            raise BadRecord("several object masks: the Seg-Zero layout takes one (use --family vision_reasoner)")
    except BadRecord as exc:
        report.total += max(len(texts), 1)
        for _ in range(max(len(texts), 1)):
            report.skip(str(exc), rid)
        return []
    if family == "vision_reasoner":
        solution, snapped = objects_solution(masks, input_size)
    else:
        box, points, snapped = record_geometry(masks[0], input_size)
        solution = format_solution(box, points)
    if snapped:
        report.notes["points_snapped_to_resized_mask"] += 1
    resized = image.resize((input_size, input_size), getattr(Image.Resampling, RESAMPLE[resample]))
    buf = io.BytesIO()
    resized.save(buf, format="PNG")
    png = buf.getvalue()
    rows = []
    for j, text in enumerate(texts):
        rows.append(
            {
                "id": rid if len(texts) == 1 else f"{rid}_{j}",
                "problem": text,
                "solution": solution,
                "image": {"bytes": png, "path": None},
                "img_height": image.height,
                "img_width": image.width,
            }
        )
    report.total += len(rows)
    report.kept += len(rows)
    return rows


def _features() -> Any:
    import datasets

    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "problem": datasets.Value("string"),
            "solution": datasets.Value("string"),
            "image": datasets.Image(),
            "img_height": datasets.Value("int64"),
            "img_width": datasets.Value("int64"),
        }
    )


def prepare_dataset(
    source: str,
    source_dir: str | Path,
    out_dir: str | Path,
    *,
    input_size: int = 840,
    resample: str = "area",
    shard_rows: int = 256,
    index: str = "index.json",
    split: str = "train",
    split_by: str | None = None,
    image_dir: str | Path | None = None,
    max_records: int | None = None,
    family: str = "seg_zero",
) -> DataReport:
    """Convert ``source_dir`` (layout ``source``) into parquet shards ``out_dir/data/train-*.parquet`` of the
    ``family``'s layout (``seg_zero``: box + two points; ``vision_reasoner``: a JSON list of objects).

    Returns the report (also written to ``out_dir/prepare_report.json``).
    """
    import datasets

    from segzero_edge.prompt import check_family, validate_input_size

    from .config import TRAINABLE_FAMILIES

    validate_input_size(input_size)
    if check_family(family) not in TRAINABLE_FAMILIES:
        raise InputError(
            f"model family {family!r} has no GRPO training data layout",
            hint=f"prepare data for one of {', '.join(TRAINABLE_FAMILIES)}",
        )
    if source not in SOURCES:
        raise InputError(f"unknown source layout {source!r}", hint=f"use one of {SOURCES}")
    if resample not in RESAMPLE:
        raise InputError(f"unknown resample {resample!r}", hint=f"use one of {list(RESAMPLE)}")
    root = Path(source_dir)
    if not root.is_dir():
        raise InputError(f"source directory {root} does not exist", hint="check --source-dir")
    items = {
        "index": lambda: iter_index(root, index),
        "refcoco": lambda: iter_refcoco(root, split, split_by, Path(image_dir) if image_dir else None),
        "reasonseg": lambda: iter_reasonseg(root),
    }[source]()
    out = Path(out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    for old in (out / "data").glob("train-*.parquet"):
        old.unlink()
    report, buffer, shards = DataReport(), [], []

    def flush() -> None:
        if buffer:
            part = out / "data" / f"part-{len(shards):05d}.parquet"
            cols = {k: [r[k] for r in buffer] for k in buffer[0]}
            datasets.Dataset.from_dict(cols, features=_features()).to_parquet(str(part))
            shards.append(part)
            buffer.clear()

    for n, item in enumerate(items):
        if max_records is not None and n >= max_records:
            break
        buffer.extend(convert_item(item, input_size, resample, report, family))
        if len(buffer) >= shard_rows:
            flush()
        if (n + 1) % 500 == 0:
            logger.info("prepare-data: %d records read, %d rows kept", n + 1, report.kept)
    flush()
    for i, part in enumerate(shards):
        part.rename(out / "data" / f"train-{i:05d}-of-{len(shards):05d}.parquet")
    (out / "prepare_report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    level = logging.WARNING if report.skipped else logging.INFO
    logger.log(level, "prepare-data %s -> %s: %s", root, out, report.summary())
    return report


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", choices=SOURCES, help="layout of the source data (see above)")
    p.add_argument("source_dir", help="folder with the source data")
    p.add_argument("out_dir", help="output folder (parquet shards under data/, prepare_report.json)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--input-size", type=int, default=None, help="model input size S: images become SxS (840)")
    size.add_argument(
        "--checkpoint",
        default=None,
        help="take S from this reasoner checkpoint's segzero_edge.json (840 when it has none)",
    )
    p.add_argument(
        "--resample",
        choices=list(RESAMPLE),
        default="area",
        help="image resize filter (area = Seg-Zero's cv2.INTER_AREA; bilinear = inference resize)",
    )
    p.add_argument("--index", default="index.json", help="index file name inside SOURCE_DIR (index layout)")
    p.add_argument("--split", default="train", help="RefCOCO split to convert (train, val, test, ...)")
    p.add_argument("--split-by", default=None, help="RefCOCO refs file: refs(SPLIT_BY).p, e.g. umd, unc, google")
    p.add_argument("--image-dir", default=None, help="RefCOCO: folder of the COCO images")
    p.add_argument("--shard-rows", type=int, default=256, help="rows per parquet file")
    p.add_argument("--max-records", type=int, default=None, help="convert only the first N source records")
    p.add_argument(
        "--family",
        choices=("seg_zero", "vision_reasoner"),
        default="seg_zero",
        help="seg_zero: one object per row (box + two points); vision_reasoner: the multi-object layout "
        '(a JSON list of boxes with one point each; index records may give "masks": [one file per object])',
    )


def run(args: argparse.Namespace) -> int:
    from segzero_edge.prompt import SEG_ZERO_INPUT_SIZE, read_checkpoint_meta

    if args.checkpoint is not None:
        input_size = read_checkpoint_meta(args.checkpoint)["input_size"]
    else:
        input_size = SEG_ZERO_INPUT_SIZE if args.input_size is None else args.input_size
    report = prepare_dataset(
        args.source,
        args.source_dir,
        args.out_dir,
        input_size=input_size,
        resample=args.resample,
        shard_rows=args.shard_rows,
        index=args.index,
        split=args.split,
        split_by=args.split_by,
        image_dir=args.image_dir,
        max_records=args.max_records,
        family=args.family,
    )
    print(f"prepare-data: {report.summary()}")
    print(f"wrote {args.out_dir}/data/*.parquet and {args.out_dir}/prepare_report.json")
    return 0 if report.kept else 1
