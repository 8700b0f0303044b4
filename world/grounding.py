"""Dense grounding loss on the world reasoner's vision tokens during SFT (the checkpoint stays a plain Qwen2.5-VL).

Why: Qwen2.5-VL's vision tower has no absolute position embedding (its 2-D RoPE is relative), and at the
world's head size (32) the text model's M-RoPE barely turns across the 8 x 8 image grid. Trained from
scratch through the language-model loss alone, the tiny tower learned *what* is in a scene (the model
named the right bag of colours) but not *where* (box accuracy 2.5%, the same on train and test scenes).
The real Qwen2.5-VL tower was pre-trained on grounding data before any reasoning fine-tune; this loss
stands in for that pre-training. A linear head on the merged vision tokens (the features the text model
reads) predicts, for every token:

* the colour and the shape of the object covering it (``min_cover`` of the token's pixels), or background;
* that object's visible box ``(x1, y1, x2, y2) / scene size`` (object tokens only);
* the token's own centre ``(x, y) / input size`` (every token: absolute position).

Optionally (``digits=True``), the digits of the answer the object would get: the hundreds and tens digit of
each of the 8 numbers of its Seg-Zero answer (box ``x1, y1, x2, y2`` and the two points, model-input
pixels, ``training.data.record_geometry``), object tokens only. Why: with the box as 4 regressed numbers,
the text model read the box off the right tokens (teacher-forced val: the supervised heads' argmax was on
the target for 100% of samples) yet wrote its tens digits right only 21-45% of the time: a tens digit is a
sawtooth of the coordinate that the 3-layer text model does not compute. These targets make the tower
lay the digits out for it, the way a pre-trained Qwen2.5-VL has learned to write coordinates as text.

Loss = CE(colour) + CE(shape) + ``box_weight`` x (L1(box) + L1(centre)) [+ mean CE(digits)]. The head is
trained with the model and dropped afterwards (it is kept in ``sft_state.pt`` so a resumed run is exact).
Targets come from the dataset's full annotation (``labels/<id>.png``, ``objects``; see ``dataset.py``).

Token layout: a merged token covers ``patch_size * spatial_merge_size`` pixels (28) of the model input;
the tower returns an image's ``(S / 28)^2`` tokens in raster order (row-major, ``x`` right, ``y`` down).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .scenes import COLORS, SHAPES

COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
#: Weight of the two L1 terms (normalized coordinates) against the two cross-entropies.
BOX_WEIGHT = 5.0
#: Digit targets: 8 answer numbers (box x1, y1, x2, y2, point 1 x, y, point 2 x, y) x (hundreds, tens).
DIGIT_PLACES = (100, 10)
DIGIT_PROBLEMS = 8 * len(DIGIT_PLACES)
IGNORE = -100


@dataclass(frozen=True)
class TokenTargets:
    """Per-token targets of one image, ``n = (S / token_px)^2`` tokens in raster order.

    Attributes:
        color: ``[n]`` int64, 0 = background, ``1 + COLOR_NAMES.index(c)`` otherwise.
        shape: ``[n]`` int64, 0 = background, ``1 + SHAPES.index(s)`` otherwise.
        box: ``[n, 4]`` float32 visible box of the covering object over the scene size (0 on background).
        center: ``[n, 2]`` float32 token centre ``(x, y)`` over the input size.
        digits: ``[n, DIGIT_PROBLEMS]`` int64 digits of the covering object's answer numbers (number-major:
            x1 hundreds, x1 tens, y1 hundreds, ...), ``IGNORE`` on background; None when not computed.
    """

    color: np.ndarray
    shape: np.ndarray
    box: np.ndarray
    center: np.ndarray
    digits: np.ndarray | None = None


def answer_digits(numbers: tuple[int, ...]) -> np.ndarray:
    """``[DIGIT_PROBLEMS]`` int64: the ``DIGIT_PLACES`` digits of each of the 8 answer numbers, in order."""
    if len(numbers) != 8:
        raise ValueError(f"an answer has 8 numbers, got {len(numbers)}")
    return np.array([(int(v) // place) % 10 for v in numbers for place in DIGIT_PLACES], np.int64)


def token_blocks(image: np.ndarray, token_px: int) -> np.ndarray:
    """``[g * g, token_px^2]``: the pixels of each merged token of an ``[S, S]`` map, tokens in raster order
    (``g = S // token_px``; a remainder of fewer than ``token_px`` pixels is dropped, as the tower does)."""
    g = image.shape[0] // token_px
    blocks = image[: g * token_px, : g * token_px].reshape(g, token_px, g, token_px).transpose(0, 2, 1, 3)
    return blocks.reshape(g * g, token_px * token_px)


def token_targets(
    labels: np.ndarray,
    objects: list[dict],
    input_size: int,
    *,
    token_px: int = 28,
    min_cover: float = 0.25,
    digits: bool = False,
) -> TokenTargets:
    """Targets from a label map ``[H, W]`` (pixel ``k + 1`` = object ``k``) and ``objects[k]`` colour/shape.

    ``digits``: also each object's answer digits (its box and points at ``input_size``, as the SFT target
    and ``prepare_dataset`` compute them).
    """
    from PIL import Image

    h, w = labels.shape
    boxes = np.zeros((len(objects) + 1, 4), np.float32)
    for k in range(len(objects)):
        ys, xs = np.nonzero(labels == k + 1)
        if len(xs):
            boxes[k + 1] = (xs.min() / w, ys.min() / h, xs.max() / w, ys.max() / h)
    lab = (
        labels
        if labels.shape == (input_size, input_size)
        else np.asarray(Image.fromarray(labels).resize((input_size, input_size), Image.NEAREST))
    )
    g = input_size // token_px
    blocks = token_blocks(lab, token_px)
    owner = np.zeros(g * g, np.int64)
    for t, block in enumerate(blocks):
        counts = np.bincount(block, minlength=len(objects) + 1)
        counts[0] = 0
        k = int(counts.argmax())
        if counts[k] >= min_cover * block.size:
            owner[t] = k
    color_ids = np.array([0] + [1 + COLOR_NAMES.index(o["color"]) for o in objects], np.int64)
    shape_ids = np.array([0] + [1 + SHAPES.index(o["shape"]) for o in objects], np.int64)
    rows, cols = np.divmod(np.arange(g * g), g)
    center = np.stack([(cols + 0.5) / g, (rows + 0.5) / g], axis=1).astype(np.float32)
    digit_rows = None
    if digits:
        from segzero_edge.training.data import record_geometry

        digit_rows = np.full((len(objects) + 1, DIGIT_PROBLEMS), IGNORE, np.int64)
        for k in range(len(objects)):
            m = labels == k + 1
            if m.any():
                box, points, _ = record_geometry(m, input_size)
                digit_rows[k + 1] = answer_digits((*box, *points[0], *points[1]))
        digit_rows = digit_rows[owner]
    return TokenTargets(color_ids[owner], shape_ids[owner], boxes[owner], center, digit_rows)


def record_targets(
    split_dir: Path, record: dict, input_size: int, token_px: int, *, digits: bool = False
) -> TokenTargets:
    """``token_targets`` of one index record (needs its ``labels`` and ``objects``)."""
    from PIL import Image

    from segzero_edge.errors import TrainingError

    if "labels" not in record or "objects" not in record:
        raise TrainingError(
            f"record {record.get('id')} of {split_dir} has no labels/objects annotation",
            hint="rewrite the split with this version (`python -m segzero_edge.world "
            "dataset`) or run the SFT without the grounding loss",
        )
    labels = np.asarray(Image.open(split_dir / record["labels"]))
    return token_targets(labels, record["objects"], input_size, token_px=token_px, digits=digits)


def make_head(features: int, digits: bool = False) -> Any:
    """The linear head: colour logits, shape logits, box (4), centre (2) [, 10 logits per digit problem]."""
    import torch

    extra = 10 * DIGIT_PROBLEMS if digits else 0
    return torch.nn.Linear(features, len(COLOR_NAMES) + 1 + len(SHAPES) + 1 + 6 + extra)


def grounding_loss(head: Any, feats: Any, targets: list[TokenTargets]) -> tuple[Any, dict[str, float]]:
    """The loss on merged vision tokens ``feats [sum n_i, D]`` (batch order) and its parts (floats)."""
    import torch
    import torch.nn.functional as F

    cat = lambda name: torch.from_numpy(np.concatenate([getattr(t, name) for t in targets]))  # noqa: E731
    color, shape, box, center = cat("color"), cat("shape"), cat("box"), cat("center")
    if feats.shape[0] != color.shape[0]:
        raise ValueError(f"{feats.shape[0]} vision tokens but {color.shape[0]} targets")
    out = head(feats)
    nc, ns = len(COLOR_NAMES) + 1, len(SHAPES) + 1
    ce_color = F.cross_entropy(out[:, :nc], color)
    ce_shape = F.cross_entropy(out[:, nc : nc + ns], shape)
    obj = color > 0
    l1_box = F.l1_loss(out[obj, nc + ns : nc + ns + 4], box[obj]) if obj.any() else out.sum() * 0
    l1_center = F.l1_loss(out[:, nc + ns + 4 : nc + ns + 6], center)
    loss = ce_color + ce_shape + BOX_WEIGHT * (l1_box + l1_center)
    parts = {
        k: float(v.detach())
        for k, v in (("color", ce_color), ("shape", ce_shape), ("box", l1_box), ("center", l1_center))
    }
    if out.shape[1] > nc + ns + 6:
        if any(t.digits is None for t in targets):
            raise ValueError("the head predicts digits but a target has none (token_targets(digits=True))")
        digits = cat("digits")
        ce_digits = (
            F.cross_entropy(out[obj, nc + ns + 6 :].reshape(-1, 10), digits[obj].reshape(-1), ignore_index=IGNORE)
            if obj.any()
            else out.sum() * 0
        )
        loss = loss + ce_digits
        parts["digits"] = float(ce_digits.detach())
    return loss, parts


class VisionCapture:
    """Keeps the merged vision tokens of the last forward (``model.model.visual``'s ``pooler_output``)."""

    def __init__(self, model: Any) -> None:
        self.feats = None
        self._handle = model.model.visual.register_forward_hook(self._hook)

    def _hook(self, module: Any, args: Any, output: Any) -> None:
        self.feats = output.pooler_output

    def pop(self) -> Any:
        feats, self.feats = self.feats, None
        if feats is None:
            raise RuntimeError("the vision tower did not run in this forward")
        return feats

    def close(self) -> None:
        self._handle.remove()
