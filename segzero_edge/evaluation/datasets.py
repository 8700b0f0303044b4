"""Referring / reasoning segmentation datasets on disk, read with numpy + PIL (pyarrow / datasets lazily).

Layouts (``open_dataset(path, layout="auto")`` detects them in this order):

``parquet``
    what Seg-Zero publishes on the Hugging Face Hub (``Ricky06662/ReasonSeg_test``, ``ReasonSeg_val`` and the
    RefCOCO(+/g) evaluation sets), downloaded as files: ``*.parquet`` shards (e.g. ``data/test-00000-of-00002.parquet``)
    with the columns ``image`` (encoded image), ``text``, ``mask`` (2-D bool list at the image size), ``image_id``,
    ``ann_id``, ``img_height``, ``img_width``. ``split`` picks the shards named ``<split>-*``. Needs pyarrow.
    VisionReasoner's evaluation sets have the same columns and may add ``bbox``, in image pixels: one box
    ``[x1, y1, x2, y2]`` (its segmentation sets: the sample's ``gt_box``) or a list of them (its detection
    sets: one per object, the sample's ``gt_boxes``).
``hf-disk``
    the same rows saved with ``datasets.save_to_disk`` (``dataset_info.json`` / ``state.json``, or a
    ``dataset_dict.json`` with splits). Needs ``datasets``.
``index``
    a folder with ``index.json``: a list of ``{"id", "image", "mask", "text"}`` records (or ``{"records": [...]}``);
    ``image`` and ``mask`` are paths relative to the folder, the mask an image whose non-zero pixels are the
    object. ``text`` may be ``problem`` / ``expression`` (one string) or ``expressions`` / ``sentences``
    (a list: one sample each, ids ``<id>_<j>``). A multi-object record gives ``"masks": [...]``, one mask
    file per object: the sample's mask is their union and each object's box is scored for detection.
``refcoco``
    the RefCOCO / RefCOCO+ / RefCOCOg release: ``refs(<split_by>).p`` + ``instances.json``, COCO images under
    ``images/`` (or ``train2014/``). One sample per sentence of each ref of ``split`` (default ``val``).
``reasonseg``
    LISA's ReasonSeg folders: ``<name>.jpg`` + ``<name>.json`` (``text`` queries, labelled polygons). As in
    Seg-Zero's conversion (``create_reasonseg_hf.py``), only the **first** query is used and "ignore" regions
    count as target (reference/segzero_spec.md §7).

The record iterators (``iter_index``, ``iter_refcoco``, ``iter_reasonseg``) are shared with
``segzero-edge train prepare-data``.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError, InputError, missing_extra
from ..overlay import OVERLAY_SUFFIX
from .masks import coco_segmentation_to_mask, load_mask_file, mask_from_value, reasonseg_mask

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "parquet", "hf-disk", "index", "refcoco", "reasonseg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
NO_RECORD = "record without image, mask or annotation"

#: A source record: (record id, image path, mask loader or None when the record is unusable, [texts]). The
#: loader returns an ``(H, W)`` bool mask, or ``(N, H, W)`` for a record with one mask per object.
Item = tuple[str, Path, Any, list[str]]


def _load_object_masks(paths: list[Path]) -> np.ndarray:
    masks = [load_mask_file(p) for p in paths]
    if len({m.shape for m in masks}) != 1:
        raise DatasetError("the object masks of a record differ in size")
    return np.stack(masks)


# --------------------------------------------------------------------------------------------------
# Record iterators (also used by training/prepare.py)
# --------------------------------------------------------------------------------------------------


def record_texts(rec: dict[str, Any]) -> list[str]:
    """The query texts of an index / RefCOCO record (see the module docstring for the accepted keys)."""
    for key in ("expressions", "sentences", "texts"):
        if isinstance(rec.get(key), list):
            return [str(t.get("sent", t.get("raw", "")) if isinstance(t, dict) else t) for t in rec[key]]
    for key in ("problem", "expression", "text", "sentence"):
        if isinstance(rec.get(key), str):
            return [rec[key]]
    return []


def iter_index(root: Path, index: str = "index.json") -> Iterator[Item]:
    """Records of the ``index`` layout; unusable records come with a ``None`` mask loader."""
    path = Path(root) / index
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    records = data.get("records", data) if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise InputError(f"{path}: expected a list of records", hint="see `prepare-data --help`")
    for i, rec in enumerate(records):
        rid = str(rec.get("id", i)) if isinstance(rec, dict) else str(i)
        many = isinstance(rec, dict) and isinstance(rec.get("masks"), list) and rec["masks"]
        if not isinstance(rec, dict) or "image" not in rec or ("mask" not in rec and not many):
            yield rid, Path(), None, []
            continue
        if many:
            paths = [Path(root) / str(m) for m in rec["masks"]]
            loader = lambda ps=paths: _load_object_masks(ps)  # noqa: E731
        else:
            loader = lambda p=Path(root) / str(rec["mask"]): load_mask_file(p)  # noqa: E731
        yield rid, Path(root) / str(rec["image"]), loader, record_texts(rec)


def iter_refcoco(
    root: Path, split: str = "train", split_by: str | None = None, image_dir: Path | None = None
) -> Iterator[Item]:
    """Refs of ``split`` in a RefCOCO release folder (``refs(<split_by>).p`` is a pickle: trusted sources only)."""
    root = Path(root)
    refs_files = sorted(root.glob("refs(*).p")) if split_by is None else [root / f"refs({split_by}).p"]
    if not refs_files or not refs_files[0].exists():
        raise InputError(f"{root}: no refs(<split_by>).p file", hint="point --source-dir at the RefCOCO folder")
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

        yield rid, Path(image_dir) / im["file_name"], loader, record_texts(ref)


def _is_sample_image(p: Path) -> bool:
    """An image of a dataset folder: an image suffix, and not an overlay ``predict``/``demo`` wrote."""
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.lower().endswith(OVERLAY_SUFFIX)


def iter_reasonseg(root: Path, *, ignore_as_target: bool = False) -> Iterator[Item]:
    """ReasonSeg images with their annotation; ``ignore_as_target`` as in ``masks.reasonseg_mask``."""
    for img in sorted(p for p in Path(root).iterdir() if _is_sample_image(p)):
        ann = img.with_suffix(".json")
        if not ann.exists():
            yield img.stem, img, None, []
            continue
        meta = json.loads(ann.read_text())

        def loader(meta: dict = meta, img: Path = img) -> np.ndarray:
            from PIL import Image

            with Image.open(img) as im:
                w, h = im.size
            return reasonseg_mask(meta.get("shapes", []), h, w, ignore_as_target=ignore_as_target)

        texts = meta.get("text", [])
        yield img.stem, img, loader, [texts] if isinstance(texts, str) else [str(t) for t in texts]


# --------------------------------------------------------------------------------------------------
# Evaluation samples
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSample:
    """One query of an evaluation set; ``load()`` reads its pixels.

    Attributes:
        id: sample id (``<image_id>_<ann_id>`` for Seg-Zero's parquet sets, the record id otherwise).
        text: the query, unnormalised (the prompt lower-cases it and strips periods).
        source: where the sample comes from (file path, or ``file#row``), for reports.
        gt_box: the ground-truth box ``(x1, y1, x2, y2)`` in image pixels, where the dataset gives one
            (VisionReasoner's ``bbox`` column), else None.
        gt_boxes: one ground-truth box per object, where the dataset lists them (a ``bbox`` column of
            boxes), else None.
    """

    id: str
    text: str
    source: str
    _load: Callable[[], tuple[np.ndarray, np.ndarray]]
    gt_box: tuple[float, float, float, float] | None = None
    gt_boxes: tuple[tuple[float, float, float, float], ...] | None = None

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """``(image (H, W, 3) uint8 RGB, mask (H, W) bool)``; for a multi-object record the union mask.

        Raises:
            DatasetError: unreadable image or mask, or a mask of another size than the image (the message
                starts with a short reason, details follow in parentheses; ``source`` says where).
        """
        image, mask, _ = self.load_objects()
        return image, mask

    def load_objects(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``load()`` plus the per-object masks ``(N, H, W)`` bool of a multi-object record (else None)."""
        try:
            image, mask = self._load()
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(f"unreadable image or mask ({type(exc).__name__}: {exc})") from exc
        objects = None
        if mask.ndim == 3:
            objects, mask = mask, mask.any(axis=0)
        if mask.shape != image.shape[:2]:
            raise DatasetError(f"mask size differs from image size (mask {mask.shape}, image {image.shape[:2]})")
        return image, mask, objects


def _rgb(value: Any) -> np.ndarray:
    """An image cell (path, PIL image, ``{"bytes", "path"}``, raw bytes) as ``(H, W, 3)`` uint8 RGB."""
    from PIL import Image

    from ..frame import load_image

    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, bytes | bytearray):
        with Image.open(io.BytesIO(value)) as im:
            return load_image(im)
    if value is None:
        raise DatasetError("the image cell is empty")
    return load_image(value)


def _failing(reason: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def load() -> tuple[np.ndarray, np.ndarray]:
        raise DatasetError(reason)

    return load


def _from_items(items: Iterator[Item], *, first_text_only: bool = False) -> Iterator[EvalSample]:
    for rid, image_path, mask_loader, texts in items:
        texts = [t for t in texts if t and t.strip()]
        if first_text_only:
            texts = texts[:1]
        if mask_loader is None or not texts:
            reason = NO_RECORD if mask_loader is None else "no query text"
            yield EvalSample(rid, "", str(image_path), _failing(reason))
            continue
        for j, text in enumerate(texts):
            sid = rid if len(texts) == 1 else f"{rid}_{j}"
            yield EvalSample(
                sid, text, str(image_path), lambda p=image_path, m=mask_loader: (_rgb(p), np.asarray(m(), dtype=bool))
            )


def _row_sample(row: dict[str, Any], n: int, source: str) -> EvalSample:
    if row.get("image_id") is not None and row.get("ann_id") is not None:
        sid = f"{row['image_id']}_{row['ann_id']}"
    else:
        sid = str(row.get("id", n))
    text = next((row[k] for k in ("text", "problem", "sentence") if isinstance(row.get(k), str)), "")
    if not text or row.get("image") is None or row.get("mask") is None:
        return EvalSample(sid, text, f"{source}#{n}", _failing(NO_RECORD if text else "no query text"))
    box = row.get("bbox")
    gt_box = gt_boxes = None
    if _is_box(box):
        gt_box = tuple(float(v) for v in box)
    elif isinstance(box, list | tuple) and box and all(_is_box(b) for b in box):
        gt_boxes = tuple(tuple(float(v) for v in b) for b in box)
    return EvalSample(
        sid, text, f"{source}#{n}", lambda r=row: (_rgb(r["image"]), mask_from_value(r["mask"])), gt_box, gt_boxes
    )


def _is_box(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def _parquet_files(path: Path, split: str | None) -> list[Path]:
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    if path.is_dir() and split is not None:
        files = [f for f in files if f.name.startswith(f"{split}-") or f.parent.name == split]
        if not files:
            raise DatasetError(f"{path}: no parquet shards of split {split!r} (<split>-*.parquet)")
    prefixes = {f.name.split("-")[0] for f in files}
    if split is None and len(prefixes) > 1:
        raise DatasetError(f"{path} holds the splits {sorted(prefixes)}", hint="choose one with --split")
    return files


def _iter_parquet(files: list[Path]) -> Iterator[EvalSample]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise missing_extra("reading parquet datasets", "train", cause=exc) from exc
    n = 0
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=8):
            names = batch.schema.names
            masks = batch.column(names.index("mask")) if "mask" in names else None
            rows = batch.select([c for c in names if c != "mask"]).to_pylist()
            for i, row in enumerate(rows):
                if masks is not None:
                    row["mask"] = _arrow_mask(masks[i])
                yield _row_sample(row, n, str(f))
                n += 1


def _arrow_mask(cell: Any) -> Any:
    """A parquet ``mask`` cell: a list of equal-length rows straight to a 2-D array (no Python lists of
    a million bools); any other type as its Python value."""
    import pyarrow as pa

    if cell.is_valid and pa.types.is_list(cell.type) and pa.types.is_list(cell.type.value_type):
        rows = cell.values
        flat = rows.flatten().to_numpy(zero_copy_only=False)
        if len(rows) and flat.size % len(rows) == 0:
            return flat.reshape(len(rows), -1)
    return cell.as_py()


def _open_hf_disk(path: Path, split: str | None) -> tuple[Any, str]:
    try:
        import datasets
    except ImportError as exc:
        raise missing_extra("reading datasets saved with save_to_disk", "train", cause=exc) from exc
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds)
        name = split or ("test" if "test" in names else names[0] if len(names) == 1 else None)
        if name not in names:
            raise DatasetError(f"{path} holds the splits {names}", hint="choose one with --split")
        ds = ds[name]
    return ds, str(path)


def _iter_hf(ds: Any, source: str) -> Iterator[EvalSample]:
    for n, row in enumerate(ds):
        yield _row_sample(row, n, source)


def detect_layout(path: str | Path) -> str:
    """The layout of ``path`` (one of ``LAYOUTS`` but ``"auto"``).

    Raises:
        DatasetError: nothing recognisable at ``path``.
    """
    p = Path(path)
    if p.is_file() and p.suffix == ".parquet":
        return "parquet"
    if not p.is_dir():
        raise DatasetError(f"dataset {p} does not exist", hint="pass a dataset folder (or a .parquet file)")
    if (p / "index.json").is_file():
        return "index"
    if any(p.glob("refs(*).p")):
        return "refcoco"
    if any((p / n).is_file() for n in ("dataset_info.json", "state.json", "dataset_dict.json")):
        return "hf-disk"
    if next(p.rglob("*.parquet"), None) is not None:
        return "parquet"
    if any(_is_sample_image(f) and f.with_suffix(".json").is_file() for f in p.iterdir()):
        return "reasonseg"
    raise DatasetError(
        f"{p}: unknown dataset layout",
        hint=f"use one of the layouts {LAYOUTS[1:]} (see `segzero-edge eval --help`) or pass --layout",
    )


class EvalDataset:
    """An evaluation set: iterate it for ``EvalSample``s (pixels are read by ``sample.load()``).

    Args:
        path: dataset folder (or ``.parquet`` file).
        layout: one of ``LAYOUTS``; ``"auto"`` detects it.
        split: parquet / hf-disk split (e.g. ``test``), RefCOCO split (default ``val``).
        split_by: RefCOCO refs file ``refs(<split_by>).p`` (default: the only one).
        index: index file name of the ``index`` layout.
    """

    def __init__(
        self,
        path: str | Path,
        layout: str = "auto",
        *,
        split: str | None = None,
        split_by: str | None = None,
        index: str = "index.json",
    ) -> None:
        if layout not in LAYOUTS:
            raise InputError(f"unknown dataset layout {layout!r}", hint=f"use one of {', '.join(LAYOUTS)}")
        self.path = Path(path)
        self.layout = detect_layout(self.path) if layout == "auto" else layout
        self.split, self.split_by, self.index = split, split_by, index
        self._len: int | None = None
        if self.layout == "parquet":
            self._files = _parquet_files(self.path, split)
        elif self.layout == "hf-disk":
            self._hf, self._source = _open_hf_disk(self.path, split)

    def __iter__(self) -> Iterator[EvalSample]:
        if self.layout == "parquet":
            return _iter_parquet(self._files)
        if self.layout == "hf-disk":
            return _iter_hf(self._hf, self._source)
        if self.layout == "index":
            return _from_items(iter_index(self.path, self.index))
        if self.layout == "refcoco":
            return _from_items(iter_refcoco(self.path, self.split or "val", self.split_by))
        return _from_items(iter_reasonseg(self.path, ignore_as_target=True), first_text_only=True)

    def __len__(self) -> int:
        """Number of samples (parquet: from the file metadata; others: one pass over the annotations)."""
        if self._len is None:
            if self.layout == "parquet":
                import pyarrow.parquet as pq

                self._len = sum(pq.ParquetFile(f).metadata.num_rows for f in self._files)
            elif self.layout == "hf-disk":
                self._len = len(self._hf)
            else:
                self._len = sum(1 for _ in self)
        return self._len

    def describe(self) -> dict[str, Any]:
        """Path, layout and split, for reports."""
        return {"path": str(self.path), "layout": self.layout, "split": self.split, "split_by": self.split_by}


def open_dataset(path: str | Path, layout: str = "auto", **kwargs: Any) -> EvalDataset:
    """``EvalDataset(path, layout, **kwargs)``."""
    return EvalDataset(path, layout, **kwargs)
