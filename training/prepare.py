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
(``data.record_geometry``). Bad records (unreadable image, mask of another size, empty mask, no text)
are reported and skipped with counts; the report is also written to ``prepare_report.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.errors import InputError

from .data import DataReport, record_geometry
from .rewards import format_solution

logger = logging.getLogger(__name__)

SOURCES = ("index", "refcoco", "reasonseg")
RESAMPLE = {"area": "BOX", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "nearest": "NEAREST"}

# A source yields (row id, image path, mask loader, [texts]); the mask loader is called once per image.
Item = tuple[str, Path, Any, list[str]]


class BadRecord(Exception):
    """A record that cannot be converted; the message is the reason counted in the report."""


# --------------------------------------------------------------------------------------------------
# Mask decoding helpers
# --------------------------------------------------------------------------------------------------


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterise flat ``[x1, y1, x2, y2, ...]`` polygons (COCO style) into a bool mask."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        xy = [(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)]
        if len(xy) >= 3:
            draw.polygon(xy, fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def _rle_counts(counts: str | list[int]) -> list[int]:
    """COCO RLE counts: an int list, or the compressed string form of pycocotools."""
    if isinstance(counts, list):
        return [int(c) for c in counts]
    out: list[int] = []
    s, p = counts.encode() if isinstance(counts, str) else counts, 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = s[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE ``{"size": [h, w], "counts": ...}`` (column-major runs, starting with zeros)."""
    h, w = (int(v) for v in rle["size"])
    flat = np.zeros(h * w, dtype=bool)
    pos, value = 0, False
    for run in _rle_counts(rle["counts"]):
        if value:
            flat[pos : pos + run] = True
        pos += run
        value = not value
    return flat.reshape((w, h)).T


def coco_segmentation_to_mask(seg: Any, height: int, width: int) -> np.ndarray:
    if isinstance(seg, list):
        return polygons_to_mask(seg, height, width)
    if isinstance(seg, dict):
        return rle_to_mask(seg)
    raise BadRecord("unknown COCO segmentation format")


def reasonseg_mask(shapes: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """ReasonSeg's mask: polygons painted largest first, target = 1, ignore = 255; returns mask == 1."""
    from PIL import Image, ImageDraw

    painted = []
    for shape in shapes:
        label = str(shape.get("label", ""))
        if label.lower() == "flag":
            continue
        pts = [(int(p[0]), int(p[1])) for p in shape.get("points", [])]
        if len(pts) < 3:
            continue
        area = int(polygons_to_mask([[c for p in pts for c in p]], height, width).sum())
        painted.append((area, 255 if "ignore" in label.lower() else 1, pts))
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for _, value, pts in sorted(painted, key=lambda t: -t[0]):
        draw.polygon(pts, fill=value, outline=value)
    return np.asarray(canvas) == 1


# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------


def _texts(rec: dict[str, Any]) -> list[str]:
    for key in ("expressions", "sentences", "texts"):
        if isinstance(rec.get(key), list):
            return [str(t.get("sent", t.get("raw", "")) if isinstance(t, dict) else t) for t in rec[key]]
    for key in ("problem", "expression", "text", "sentence"):
        if isinstance(rec.get(key), str):
            return [rec[key]]
    return []


def _load_mask_file(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as m:
        arr = np.asarray(m.convert("L") if m.mode not in ("1", "L", "I", "I;16", "P") else m)
    return arr != 0 if arr.ndim == 2 else arr.any(axis=-1)


def iter_index(root: Path, index: str = "index.json") -> Iterator[Item]:
    data = json.loads((root / index).read_text())
    records = data.get("records", data) if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise InputError(f"{root / index}: expected a list of records", hint="see `prepare-data --help`")
    for i, rec in enumerate(records):
        rid = str(rec.get("id", i)) if isinstance(rec, dict) else str(i)
        if not isinstance(rec, dict) or "image" not in rec or "mask" not in rec:
            yield rid, Path(), None, []
            continue
        mask_path = root / str(rec["mask"])
        yield rid, root / str(rec["image"]), (lambda p=mask_path: _load_mask_file(p)), _texts(rec)


def iter_refcoco(
    root: Path, split: str = "train", split_by: str | None = None, image_dir: Path | None = None
) -> Iterator[Item]:
    refs_files = sorted(root.glob("refs(*).p")) if split_by is None else [root / f"refs({split_by}).p"]
    if not refs_files or not refs_files[0].exists():
        raise InputError(
            f"{root}: no refs(<split_by>).p file", hint="point --source-dir at the RefCOCO folder"
        )
    # The official release is a pickle; only open files from a source you trust.
    with open(refs_files[0], "rb") as f:
        refs = pickle.load(f)
    inst = json.loads((root / "instances.json").read_text())
    images = {im["id"]: im for im in inst["images"]}
    anns = {a["id"]: a for a in inst["annotations"]}
    if image_dir is None:
        image_dir = next((root / d for d in ("images", "train2014") if (root / d).is_dir()), root)
    for ref in refs:
        if split and ref.get("split") != split:
            continue
        ann, im = anns.get(ref.get("ann_id")), images.get(ref.get("image_id"))
        rid = f"ref_{ref.get('ref_id')}"
        if ann is None or im is None:
            yield rid, Path(), None, []
            continue

        def loader(a: dict = ann, m: dict = im) -> np.ndarray:
            return coco_segmentation_to_mask(a["segmentation"], m["height"], m["width"])

        yield rid, image_dir / im["file_name"], loader, _texts(ref)


def iter_reasonseg(root: Path) -> Iterator[Item]:
    for img in sorted(p for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        ann = img.with_suffix(".json")
        if not ann.exists():
            yield img.stem, img, None, []
            continue
        meta = json.loads(ann.read_text())

        def loader(meta: dict = meta, img: Path = img) -> np.ndarray:
            from PIL import Image

            with Image.open(img) as im:
                w, h = im.size
            return reasonseg_mask(meta.get("shapes", []), h, w)

        texts = meta.get("text", [])
        yield img.stem, img, loader, [texts] if isinstance(texts, str) else [str(t) for t in texts]


# --------------------------------------------------------------------------------------------------
# Conversion and writing
# --------------------------------------------------------------------------------------------------


def convert_item(item: Item, input_size: int, resample: str, report: DataReport) -> list[dict[str, Any]]:
    """Rows of the Seg-Zero layout for one image (one per text), or [] with the reason in ``report``."""
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
        except Exception as exc:
            raise BadRecord(f"unreadable mask ({type(exc).__name__})") from exc
        if mask.shape != (image.height, image.width):
            raise BadRecord("mask size differs from image size")
        if not mask.any():
            raise BadRecord("empty mask")
    except BadRecord as exc:
        report.total += max(len(texts), 1)
        for _ in range(max(len(texts), 1)):
            report.skip(str(exc), rid)
        return []
    box, points, snapped = record_geometry(mask, input_size)
    if snapped:
        report.notes["points_snapped_to_resized_mask"] += 1
    resized = image.resize((input_size, input_size), getattr(Image.Resampling, RESAMPLE[resample]))
    buf = io.BytesIO()
    resized.save(buf, format="PNG")
    png = buf.getvalue()
    solution = format_solution(box, points)
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
) -> DataReport:
    """Convert ``source_dir`` (layout ``source``) into parquet shards ``out_dir/data/train-*.parquet``.

    Returns the report (also written to ``out_dir/prepare_report.json``).
    """
    import datasets

    from segzero_edge.prompt import validate_input_size

    validate_input_size(input_size)
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
        buffer.extend(convert_item(item, input_size, resample, report))
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
    size.add_argument(
        "--input-size", type=int, default=None, help="model input size S: images become SxS (840)"
    )
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
    p.add_argument(
        "--split-by", default=None, help="RefCOCO refs file: refs(SPLIT_BY).p, e.g. umd, unc, google"
    )
    p.add_argument("--image-dir", default=None, help="RefCOCO: folder of the COCO images")
    p.add_argument("--shard-rows", type=int, default=256, help="rows per parquet file")
    p.add_argument("--max-records", type=int, default=None, help="convert only the first N source records")


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
    )
    print(f"prepare-data: {report.summary()}")
    print(f"wrote {args.out_dir}/data/*.parquet and {args.out_dir}/prepare_report.json")
    return 0 if report.kept else 1
