"""Frozen results of the SAM2 stage. Arrays are read-only numpy arrays."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

import numpy as np

from .contract import FEATURES


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Sam2Features:
    """One encoded image (``Sam2Pipeline.encode``); reuse it for any number of ``decode`` calls.

    Attributes:
        image_embed: ``[1, 256, S/16, S/16]`` float32 (``no_mem_embed`` added), S = model input size.
        high_res_feats_0: ``[1, 32, S/4, S/4]`` float32.
        high_res_feats_1: ``[1, 64, S/8, S/8]`` float32.
        image_size: ``(W, H)`` of the original image: prompts are read in its pixels and masks come
            back at this size.
        timings_ms: ``"preprocess"`` and ``"encoder"`` milliseconds.
    """

    image_embed: np.ndarray
    high_res_feats_0: np.ndarray
    high_res_feats_1: np.ndarray
    image_size: tuple[int, int]
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in FEATURES:
            object.__setattr__(self, name, _readonly(np.ascontiguousarray(getattr(self, name), dtype=np.float32)))
        object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))
        object.__setattr__(self, "timings_ms", MappingProxyType(dict(self.timings_ms)))

    def feeds(self) -> dict[str, np.ndarray]:
        """The decoder graph's feature inputs by name."""
        return {name: getattr(self, name) for name in FEATURES}


@dataclass(frozen=True, eq=False)
class Sam2Result:
    """Masks for N objects (``Sam2Pipeline.decode``), in the order the prompts were given.

    Attributes:
        masks: ``[N, H, W]`` bool, original image size (logits upsampled bilinearly, ``> 0``).
        scores: ``[N]`` float32 predicted IoU of each chosen mask.
        chosen: ``[N]`` int64 chosen mask token: 0 = single-mask output, 1..3 = multimask outputs.
        low_res_logits: ``[N, r, r]`` float32 logits of the chosen masks (r = S/4, 256), clamped to
            +-32 as SAM2 returns them; pass them back as ``mask_input`` to refine.
        iou_scores: ``[N, 4]`` float32 predicted IoU of all four tokens.
        object_score_logits: ``[N]`` float32 SAM2's object-presence logit (> 0: object present). The
            image predictor ignores it; it is reported, never applied.
        mask_mode: ``"best"`` or ``"single"``, the choice rule that was applied.
        image_size: ``(W, H)`` of the masks.
        timings_ms: ``"decoder"`` and ``"postprocess"`` milliseconds.
    """

    masks: np.ndarray
    scores: np.ndarray
    chosen: np.ndarray
    low_res_logits: np.ndarray
    iou_scores: np.ndarray
    object_score_logits: np.ndarray
    mask_mode: str
    image_size: tuple[int, int]
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name not in ("mask_mode", "image_size", "timings_ms"):  # the arrays
                object.__setattr__(self, f.name, _readonly(getattr(self, f.name)))
        if self.masks.dtype != np.bool_ or self.masks.ndim != 3:
            raise ValueError(f"Sam2Result.masks must be [N, H, W] bool, got {self.masks.dtype} {self.masks.shape}")
        object.__setattr__(self, "timings_ms", MappingProxyType(dict(self.timings_ms)))

    def __len__(self) -> int:
        return int(self.masks.shape[0])
