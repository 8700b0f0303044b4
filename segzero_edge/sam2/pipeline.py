"""``Sam2Pipeline``: the SAM2 stage of an engine directory (encode an image once, decode masks), over a backend.

    sam2 = Sam2Pipeline("engine_dir", device="cpu")
    feats = sam2.encode("kitchen.jpg")                     # once per image
    res = sam2.decode(feats, box=[x1, y1, x2, y2], points=[[px1, py1], [px2, py2]])
    res.masks[0]                                           # (H, W) bool at the original size

Coordinates are pixels of the original image (x right, y down; boxes x1, y1, x2, y2). Masks come back at
the original size. Per call: prompts -> decoder inputs, the backend's mask decoder, mask choice and upsampling
(the host side: ``host.py``). ``Sam2Features`` and ``Sam2Result`` are the stage's frozen results.

Backends (``Sam2Backend``): ONNX Runtime (``"ort"``), TensorRT engines built on this GPU (``"trt"``), and
the official torch model (``"torch"``, a plugin of the torch side, which also brings SAM2's own torch
preprocessing and upsampling). The pipeline is the same for all of them.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from ..errors import BackendUnavailableError, InputError
from ..frame import ImageLike, load_image
from ..manifest import Manifest, Verify, load_manifest
from ..ort import SessionFactory
from .contract import COMPONENT, DECODER_OUTPUTS, FEATURES, MASK_MODES, Sam2Settings, check_graphs
from .host import PromptBatch, build_prompts, choose_masks, masks_from_logits, preprocess

log = logging.getLogger(__name__)

BACKENDS = ("auto", "ort", "trt", "torch")


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


class Sam2Backend(Protocol):
    """What the pipeline needs from a backend: the two graphs' contract, and the host side around them.

    Attributes:
        name: ``"ort"``, ``"trt"``, ``"torch"``...
        device: where it runs.
        max_objects, max_points: the most objects / prompt points one decoder call takes (None: any).
    """

    name: str
    device: str
    max_objects: int | None
    max_points: int | None

    def preprocess(self, rgb: np.ndarray, settings: Sam2Settings) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> ``[1, 3, S, S]`` float32 (``host.preprocess`` for graph backends)."""
        ...

    def encode(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """``[1, 3, S, S]`` float32 -> the three features by name (``contract.FEATURES``)."""
        ...

    def decode(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The decoder inputs by name -> ``contract.DECODER_OUTPUTS`` by name."""
        ...

    def masks(self, logits: np.ndarray, size_hw: tuple[int, int], threshold: float) -> np.ndarray:
        """``[N, r, r]`` chosen low-res logits -> ``[N, H, W]`` bool (``host.masks_from_logits``)."""
        ...


class HostSide:
    """The numpy host side shared by the graph backends (ONNX Runtime, TensorRT)."""

    def preprocess(self, rgb: np.ndarray, settings: Sam2Settings) -> np.ndarray:
        return preprocess(rgb, settings.image_size, settings.pixel_mean, settings.pixel_std)

    def masks(self, logits: np.ndarray, size_hw: tuple[int, int], threshold: float) -> np.ndarray:
        return masks_from_logits(logits, size_hw, threshold)


class Sam2Pipeline:
    """Encode an image once, then decode masks for N objects per call.

    Args:
        engine_dir: an engine directory with the ``sam2`` component (``segzero-edge export sam2``).
        manifest: the directory's already loaded manifest (skips reading and verifying it again).
        device: ``"auto" | "cpu" | "cuda[:N]" | "tensorrt[:N]"`` (``segzero_edge.ort``); a torch device with
            ``backend="torch"``.
        backend: ``"ort"``, ``"trt"`` (engines from ``segzero-edge build`` for this GPU), ``"torch"`` (the
            official model from the engine's source checkpoint; ``backend_options``: ``checkpoint``),
            ``"auto"`` (``"trt"`` when such engines and TensorRT are present and the device allows it, else
            ``"ort"``), or a ``Sam2Backend`` instance.
        threads: CPU threads per session (None: the library's default).
        verify: how to check the engine files (``load_manifest``'s ``verify``).
        sessions: an ONNX Runtime session factory to share (default: a new one for ``device``/``threads``).
        backend_options: keyword arguments of a plugin backend's constructor.

    Raises:
        ManifestError, EngineFileError: no valid engine directory, or no sam2 component in it.
        EngineIncompatibleError: graphs or settings not of this contract.
        BackendUnavailableError: onnxruntime / TensorRT / the requested device is missing.
    """

    def __init__(
        self,
        engine_dir: str | Path,
        *,
        manifest: Manifest | None = None,
        device: str = "auto",
        backend: str | Sam2Backend = "auto",
        threads: int | None = None,
        verify: Verify = "full",
        sessions: SessionFactory | None = None,
        backend_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(backend, str) and backend not in BACKENDS:
            raise InputError(f"unknown backend {backend!r}", hint=f"use one of {', '.join(BACKENDS)}")
        if backend == "trt" and device == "cpu":
            raise InputError("backend='trt' runs on the GPU, not device='cpu'", hint="use backend='ort' for the CPU")
        self.engine_dir = Path(engine_dir)
        self.manifest = manifest if manifest is not None else load_manifest(self.engine_dir, verify=verify)
        self.settings = Sam2Settings.from_mapping(self.manifest.component(COMPONENT))
        self.encoder_spec, self.decoder_spec = check_graphs(self.manifest)
        self.backend = self._open_backend(backend, device, threads, sessions, dict(backend_options or {}))
        log.info("sam2: %s backend on %s (%s)", self.backend.name, self.backend.device, self.settings.config)

    def _open_backend(self, backend, device: str, threads: int | None, sessions, options: dict) -> Sam2Backend:
        if not isinstance(backend, str):
            return backend
        if backend == "torch":
            from ..plugins import load_plugin

            return load_plugin("torch").open_sam2(
                self.engine_dir, self.manifest, self.settings, device=device, threads=threads, **options
            )
        if options:
            raise InputError(f"backend {backend!r} takes no backend options, got {sorted(options)}")
        if backend == "trt" or (
            backend == "auto"
            and str(device).split(":")[0] in ("auto", "cuda")
            and importlib.util.find_spec("tensorrt") is not None
            and self.manifest.trt_builds
        ):
            try:
                from .trt_backend import TrtSam2Backend

                return TrtSam2Backend(self.engine_dir, self.manifest)
            except BackendUnavailableError as exc:
                if backend == "trt":
                    raise
                log.info("TensorRT engines not usable here (%s); using ONNX Runtime", exc.message)
        from .ort_backend import OrtSam2Backend

        sessions = sessions or SessionFactory(device, threads=threads)
        return OrtSam2Backend(self.engine_dir, self.encoder_spec, self.decoder_spec, sessions, threads=threads)

    @property
    def image_size(self) -> int:
        """S, the model input size (images are stretched to S x S)."""
        return self.settings.image_size

    # -- encoder -----------------------------------------------------------------------------------
    def encode(self, image: ImageLike, *, preprocess: Callable[[np.ndarray], np.ndarray] | None = None) -> Sam2Features:
        """Preprocess and encode one image (a path, a PIL image, or an ``(H, W, 3)`` uint8 RGB array).

        Args:
            preprocess: ``(H, W, 3)`` uint8 RGB -> ``[1, 3, S, S]`` float32 instead of the backend's (the
                tracker loads frames as the video predictor does).

        Returns:
            ``Sam2Features`` with ``image_size = (W, H)`` of this image.
        """
        t0 = time.perf_counter()
        rgb = load_image(image)
        x = preprocess(rgb) if preprocess is not None else self.backend.preprocess(rgb, self.settings)
        t_pre = _ms(t0)
        feats = self.encode_preprocessed(x, (rgb.shape[1], rgb.shape[0]))
        return Sam2Features(
            **feats.feeds(), image_size=feats.image_size, timings_ms={"preprocess": t_pre, **feats.timings_ms}
        )

    def encode_preprocessed(self, image: np.ndarray, image_size: tuple[int, int]) -> Sam2Features:
        """Encode an already preprocessed ``[1, 3, S, S]`` float32 image of original size ``(W, H)``."""
        s = self.settings.image_size
        if np.shape(image) != (1, 3, s, s):
            raise InputError(f"preprocessed image must be [1, 3, {s}, {s}], got {np.shape(image)}")
        t0 = time.perf_counter()
        out = self.backend.encode(np.ascontiguousarray(image, dtype=np.float32))
        return Sam2Features(**out, image_size=image_size, timings_ms={"encoder": _ms(t0)})

    # -- decoder -----------------------------------------------------------------------------------
    def decode(
        self,
        features: Sam2Features,
        *,
        box=None,
        points=None,
        labels=None,
        mask_input=None,
        mask_mode: str | None = None,
        image_size: tuple[int, int] | None = None,
    ) -> Sam2Result:
        """Masks for N objects of an encoded image, all decoded together.

        Args:
            features: from ``encode``.
            box: ``(4,)`` or ``(N, 4)`` boxes ``x1, y1, x2, y2`` in original-image pixels (the name
                ``SAM2ImagePredictor.predict`` uses).
            points: ``(P, 2)``, ``(N, P, 2)`` or a list of N ``(P_i, 2)`` point arrays ``(x, y)`` in
                original-image pixels (with boxes: the points of each box's object).
            labels: 1 (foreground) / 0 (background) per point, shaped like ``points`` without the
                last axis; default all foreground.
            mask_input: previous ``low_res_logits`` ``(N, r, r)`` to refine, or None.
            mask_mode: ``"best"`` (Seg-Zero: highest predicted IoU of the 3 multimask outputs) or
                ``"single"`` (single-mask output with SAM2's stability fallback); default from the
                manifest (``"best"``).
            image_size: ``(W, H)`` the coordinates refer to and the masks are returned at; default
                ``features.image_size`` (the image that was encoded).

        Returns:
            ``Sam2Result`` with N masks in prompt order.

        Raises:
            InputError: no prompt, bad shapes or values, unknown mask mode.
        """
        s = self.settings
        mode = mask_mode or s.default_mask_mode
        if mode not in MASK_MODES:
            raise InputError(f"unknown mask_mode {mode!r}", hint=f"use one of {', '.join(MASK_MODES)}")
        w, h = image_size or features.image_size
        t0 = time.perf_counter()
        n, batches = build_prompts(
            box=box,
            points=points,
            labels=labels,
            mask_input=mask_input,
            image_wh=(w, h),
            image_size=s.image_size,
            low_res_size=s.low_res_size,
            max_objects=self.backend.max_objects or s.max_objects,
        )
        low_res, iou, obj = self.decode_raw(features, batches, n)
        t_dec = _ms(t0)
        t0 = time.perf_counter()
        chosen = choose_masks(low_res, iou, mode, delta=s.stability_delta, threshold=s.stability_threshold)
        rows = np.arange(n)
        chosen_logits = low_res[rows, chosen]
        masks = self.backend.masks(chosen_logits, (h, w), s.mask_threshold)
        return Sam2Result(
            masks=masks,
            scores=iou[rows, chosen].astype(np.float32),
            chosen=chosen,
            low_res_logits=np.clip(chosen_logits, -s.logit_clamp, s.logit_clamp),
            iou_scores=iou,
            object_score_logits=obj.reshape(n),
            mask_mode=mode,
            image_size=(w, h),
            timings_ms={"decoder": t_dec, "postprocess": _ms(t0)},
        )

    def decode_raw(
        self, features: Sam2Features, batches: list[PromptBatch], n: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the decoder for prepared prompt batches (``prompts.build_prompts``).

        Returns:
            ``low_res_masks [n, 4, r, r]``, ``iou_scores [n, 4]``, ``object_score_logits [n, 1]`` in
            object order, straight from the decoder (no choice, no clamp).
        """
        r = self.settings.low_res_size
        low_res = np.empty((n, 4, r, r), dtype=np.float32)
        iou = np.empty((n, 4), dtype=np.float32)
        obj = np.empty((n, 1), dtype=np.float32)
        max_points = self.backend.max_points
        masks_out, iou_out, obj_out = DECODER_OUTPUTS
        for b in batches:
            if max_points is not None and b.point_coords.shape[1] > max_points:
                raise InputError(
                    f"{b.point_coords.shape[1]} prompt points (box corners included) exceed the "
                    f"TensorRT profile's maximum of {max_points}",
                    hint="use fewer points, or re-export with a larger --max-points",
                )
            out = self.backend.decode({**features.feeds(), **b.feeds()})
            low_res[b.indices] = out[masks_out]
            iou[b.indices] = out[iou_out]
            obj[b.indices] = out[obj_out]
        return low_res, iou, obj

    def segment(self, image: ImageLike, **prompts) -> Sam2Result:
        """``decode(encode(image), **prompts)``, for one-off calls."""
        return self.decode(self.encode(image), **prompts)


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
