"""Ground-truth mask readers (numpy + PIL only): COCO polygons and RLE, ReasonSeg polygons, mask images.

Every function returns an ``(H, W)`` mask in image pixels (row y, column x). Shared by ``segzero-edge eval``
(runtime) and ``segzero-edge train prepare-data`` (training imports them from here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError

#: Pixel value ReasonSeg's reference script paints for "ignore" polygons (target polygons are painted 1).
REASONSEG_IGNORE = 255


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterise flat ``[x1, y1, x2, y2, ...]`` polygons (COCO style, pixel coordinates) into an
    ``(height, width)`` bool mask; polygons with fewer than 3 vertices are skipped."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        xy = [(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)]
        if len(xy) >= 3:
            draw.polygon(xy, fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def _rle_counts(counts: str | bytes | list[int]) -> list[int]:
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
    """Decode a COCO RLE ``{"size": [h, w], "counts": ...}`` (column-major runs, starting with zeros)
    into an ``(h, w)`` bool mask."""
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
    """A COCO annotation's ``segmentation`` (polygon list or RLE dict) as an ``(height, width)`` bool mask.

    Raises:
        DatasetError: neither a polygon list nor an RLE dict.
    """
    if isinstance(seg, list):
        return polygons_to_mask(seg, height, width)
    if isinstance(seg, dict):
        return rle_to_mask(seg)
    raise DatasetError("unknown COCO segmentation format")


def reasonseg_label_map(shapes: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """ReasonSeg's painted label map ``(height, width)`` uint8: polygons painted largest area first,
    "target" polygons as 1, labels containing "ignore" as ``REASONSEG_IGNORE``; "flag" polygons are skipped
    (LISA's and Seg-Zero's ``create_reasonseg_hf.py`` do the same)."""
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
        painted.append((area, REASONSEG_IGNORE if "ignore" in label.lower() else 1, pts))
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for _, value, pts in sorted(painted, key=lambda t: -t[0]):
        draw.polygon(pts, fill=value, outline=value)
    return np.asarray(canvas)


def reasonseg_mask(
    shapes: list[dict[str, Any]], height: int, width: int, *, ignore_as_target: bool = False
) -> np.ndarray:
    """ReasonSeg's ground truth as an ``(height, width)`` bool mask.

    Args:
        ignore_as_target: False (training, ``prepare-data``): only target pixels; True (evaluation): the
            official evaluation casts the painted map to bool, so "ignore" regions count as target
            (reference/segzero_spec.md §7).
    """
    labels = reasonseg_label_map(shapes, height, width)
    return labels != 0 if ignore_as_target else labels == 1


def load_mask_file(path: str | Path) -> np.ndarray:
    """A mask image (PNG, ...) as an ``(H, W)`` bool mask: non-zero pixels (any channel) are the object."""
    from PIL import Image

    with Image.open(path) as m:
        arr = np.asarray(m.convert("L") if m.mode not in ("1", "L", "I", "I;16", "P") else m)
    return arr != 0 if arr.ndim == 2 else arr.any(axis=-1)


def mask_from_value(value: Any) -> np.ndarray:
    """A mask stored in a dataset cell as an ``(H, W)`` bool array: a nested list / array of bools or 0/1
    (Seg-Zero's published ``mask`` column), an encoded image (``{"bytes": ...}`` or raw bytes), or a COCO RLE.

    Raises:
        DatasetError: a value of another kind, or not two-dimensional.
    """
    import io

    if isinstance(value, dict) and "counts" in value and "size" in value:
        return rle_to_mask(value)
    if isinstance(value, dict) and value.get("bytes") is not None:
        value = value["bytes"]
    elif isinstance(value, dict) and value.get("path"):
        return load_mask_file(value["path"])
    if isinstance(value, bytes | bytearray):
        return load_mask_file(io.BytesIO(value))
    try:
        arr = np.asarray(value if not isinstance(value, list) else [list(r) for r in value])
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"cannot read a mask from a {type(value).__name__}") from exc
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        arr = arr.any(axis=-1)
    if arr.ndim != 2 or arr.dtype == object:
        raise DatasetError(f"a mask must be two-dimensional, got shape {arr.shape} ({arr.dtype})")
    return arr.astype(bool)
