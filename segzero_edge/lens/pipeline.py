"""``LensPipeline``: LENS's mask head of an engine directory (the context graph and the fine-tuned SAM2
decoder), over a backend.

    lens = LensPipeline("engine_dir")
    hidden = reasoner.query_hidden(question, result.token_ids, vision, lens.queries)   # [Q, hidden]
    res = lens.segment(sam2_features, hidden)                                         # LensMask

Per request: the reasoner's mask pass gives the post-norm hidden states of the Q learned queries (that pass
belongs to the reasoner: ``ReasonerPipeline.query_hidden``); the context graph turns them into one SAM2 prompt
token ``[1, 1, 256]``; the mask decoder runs on the frame's SAM2 features with that token (no points, no box);
the host picks SAM2's single-mask output with its stability fallback and upsamples the chosen low-res logits
straight to the original size (no clamp), threshold 0.

Backends (``LensBackend``): ONNX Runtime (``ort_backend.py``; TensorRT through its provider).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import numpy as np

from ..errors import InputError, ManifestError
from ..manifest import Manifest
from ..ort import SessionFactory
from ..sam2.contract import COMPONENT as SAM2_COMPONENT
from ..sam2.contract import IOU_SCORES, LOW_RES_MASKS, OBJECT_SCORE_LOGITS, Sam2Settings
from ..sam2.host import choose_masks, mask_box, masks_from_logits
from ..sam2.pipeline import Sam2Features
from ..types import Answer, GenerationStats, ObjectMask, Segmentation
from .contract import COMPONENT, SPARSE_PROMPT, LensSettings, check_graphs


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


class LensBackend(Protocol):
    """What the pipeline needs: the context graph and the mask decoder.

    Attributes:
        name: ``"ort"``...
        device: where it runs.
    """

    name: str
    device: str

    def context(self, query_hidden: np.ndarray) -> np.ndarray:
        """``[1, Q, hidden]`` float32 -> ``sparse_prompt [1, 1, D]`` float32."""
        ...

    def decode(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Features + ``sparse_prompt [N, S, D]`` -> ``low_res_masks``, ``iou_scores``, ``object_score_logits``."""
        ...


@dataclass(frozen=True, eq=False)
class LensMask:
    """One LENS mask.

    Attributes:
        mask: ``(H, W)`` bool at the original image size.
        score: SAM2's predicted IoU of the chosen token.
        object_score: SAM2's object-presence logit (> 0: present; reported, not applied, as LENS does).
        chosen: the chosen mask token (0 = single-mask output, 1..3 = the stability fallback's choice).
        sparse_prompt: ``[1, 1, D]`` the prompt token the context graph produced.
        low_res_logits: ``[r, r]`` the chosen token's logits.
        timings_ms: ``"connector"``, ``"mask_decoder"``, ``"mask_postprocess"``.
    """

    mask: np.ndarray
    score: float
    object_score: float
    chosen: int
    sparse_prompt: np.ndarray
    low_res_logits: np.ndarray
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "timings_ms", MappingProxyType(dict(self.timings_ms)))


class LensPipeline:
    """The LENS mask head of an engine directory.

    Args:
        engine_dir: the engine directory (with ``lens`` and ``sam2`` components).
        manifest: its loaded manifest.
        sessions: the ONNX Runtime session factory to share (``Segmenter`` passes its own).
        context: the context graph variant: ``"fp32"``, ``"int8"``, ``"int4"``; None = the engine's default.
        backend: ``"ort"`` or a ``LensBackend`` instance.

    Raises:
        ManifestError: no lens or sam2 component, or files missing.
        EngineIncompatibleError: settings or graphs of another contract, or a context variant not exported.
    """

    def __init__(
        self,
        engine_dir: str | Path,
        manifest: Manifest,
        *,
        sessions: SessionFactory | None = None,
        context: str | None = None,
        backend: str | LensBackend = "ort",
    ) -> None:
        self.engine_dir = Path(engine_dir)
        self.settings = LensSettings.from_mapping(manifest.component(COMPONENT))
        self.sam2_settings = Sam2Settings.from_mapping(manifest.component(SAM2_COMPONENT))
        self.precision = context or self.settings.default_context
        self.context_spec, self.decoder_spec = check_graphs(manifest, self.settings, self.precision)
        path = self.engine_dir / self.settings.queries_file
        try:
            queries = np.load(path)
        except (OSError, ValueError) as exc:
            raise ManifestError(f"cannot read the LENS queries {path}: {exc}", hint="re-export the engine") from exc
        if queries.shape != (self.settings.num_queries, self.settings.hidden_size) or queries.dtype != np.float32:
            raise ManifestError(
                f"{path} holds {queries.dtype} {list(queries.shape)}, the manifest says float32 "
                f"{[self.settings.num_queries, self.settings.hidden_size]}",
                hint="re-export the engine",
            )
        queries.setflags(write=False)
        self.queries = queries
        if isinstance(backend, str):
            if backend != "ort":
                raise InputError(f"unknown LENS backend {backend!r}", hint="use 'ort'")
            from .ort_backend import OrtLensBackend

            backend = OrtLensBackend(
                self.engine_dir, self.context_spec, self.decoder_spec, sessions or SessionFactory("auto")
            )
        self.backend = backend

    def context(self, query_hidden: np.ndarray) -> np.ndarray:
        """The context module: ``[Q, hidden]`` hidden states of the queries -> one prompt token ``[1, 1, D]``."""
        s = self.settings
        x = np.asarray(query_hidden, dtype=np.float32)
        if x.shape != (s.num_queries, s.hidden_size):
            raise InputError(f"query hidden states must be [{s.num_queries}, {s.hidden_size}], got {list(x.shape)}")
        return self.backend.context(np.ascontiguousarray(x[None]))

    def decode(self, features: Sam2Features, sparse_prompt: np.ndarray) -> LensMask:
        """SAM2's mask from one prompt token ``[1, S, D]`` on an encoded frame (masks at its original size)."""
        s2 = self.sam2_settings
        t0 = time.perf_counter()
        out = self.backend.decode({**features.feeds(), SPARSE_PROMPT: np.ascontiguousarray(sparse_prompt, np.float32)})
        t_dec = _ms(t0)
        t0 = time.perf_counter()
        low_res, iou = out[LOW_RES_MASKS], out[IOU_SCORES]
        chosen = int(
            choose_masks(low_res, iou, "single", delta=s2.stability_delta, threshold=s2.stability_threshold)[0]
        )
        logits = low_res[0, chosen]
        w, h = features.image_size
        mask = masks_from_logits(logits[None], (h, w), s2.mask_threshold)[0]
        return LensMask(
            mask=mask,
            score=float(iou[0, chosen]),
            object_score=float(out[OBJECT_SCORE_LOGITS].reshape(-1)[0]),
            chosen=chosen,
            sparse_prompt=np.asarray(sparse_prompt, np.float32),
            low_res_logits=logits,
            timings_ms={"mask_decoder": t_dec, "mask_postprocess": _ms(t0)},
        )

    def segment(self, features: Sam2Features, query_hidden: np.ndarray) -> LensMask:
        """``decode(features, context(query_hidden))`` with the connector timed too."""
        t0 = time.perf_counter()
        sparse = self.context(query_hidden)
        t_ctx = _ms(t0)
        res = self.decode(features, sparse)
        return replace(res, timings_ms={"connector": t_ctx, **res.timings_ms})


def lens_segmentation(
    res: LensMask, answer: Answer, raw_text: str, generation: GenerationStats, timings: Mapping[str, float]
) -> Segmentation:
    """``Segmenter.predict``'s result for a LENS mask: found when the mask has a pixel. Nothing prompted SAM2
    with a box: ``box`` is the mask's bounding box (the answer's own box is ``answer.box``)."""
    found = bool(res.mask.any())
    obj = ObjectMask(
        mask=res.mask, box=mask_box(res.mask), score=res.score, object_score=res.object_score, lost=not found
    )
    return Segmentation(
        mask=res.mask,
        found=found,
        box=obj.box,
        score=res.score if found else 0.0,
        reasoning=answer.think,
        raw_text=raw_text,
        timings_ms=timings,
        answer=answer,
        error=None if found else "SAM2 returned an empty mask for the LENS prompt",
        generation=generation,
        objects=(obj,),
    )
