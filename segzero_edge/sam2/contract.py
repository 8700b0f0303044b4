"""The SAM2 part of the engine-directory contract: graph names, tensor names, settings.

Written by the exporter (``segzero-edge export sam2``) and read by the runtime; defined here once.

Graphs (DESIGN.md §3, S = ``image_size`` from the model, 1024 for every official config):

* ``sam2.image_encoder`` (``sam2/image_encoder.onnx``): ``image`` [1,3,S,S] float32, ImageNet-normalized,
  stretched to S x S (no letterbox) -> ``image_embed`` [1,256,S/16,S/16] (``no_mem_embed`` added),
  ``high_res_feats_0`` [1,32,S/4,S/4], ``high_res_feats_1`` [1,64,S/8,S/8].
* ``sam2.mask_decoder`` (``sam2/mask_decoder.onnx``): the three features, ``point_coords``
  [N,P,2] float32 (x, y in model-input pixels: original pixels scaled by S/W and S/H), ``point_labels``
  [N,P] float32 (box corners first with labels 2 and 3, then points 1 = foreground / 0 = background;
  -1 = padding), ``mask_input`` [N,1,S/4,S/4] (previous low-res logits), ``has_mask_input`` [N]
  (1.0: use ``mask_input``; 0.0: no previous mask) -> ``low_res_masks`` [N,4,S/4,S/4] logits (token 0 is
  the single-mask output, 1..3 the multimask outputs), ``iou_scores`` [N,4], ``object_score_logits``
  [N,1]. N (``num_objects``) and P (``num_points``) are dynamic. The graph appends SAM2's padding point
  itself, exactly as the official prompt encoder does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import EngineIncompatibleError
from ..manifest import GraphSpec, Manifest, TensorSpec

COMPONENT = "sam2"
ENCODER = "sam2.image_encoder"
DECODER = "sam2.mask_decoder"
ENCODER_FILE = "sam2/image_encoder.onnx"
DECODER_FILE = "sam2/mask_decoder.onnx"

IMAGE = "image"
ENCODER_INPUTS = (IMAGE,)
IMAGE_EMBED, HIGH_RES_FEATS_0, HIGH_RES_FEATS_1 = "image_embed", "high_res_feats_0", "high_res_feats_1"
FEATURES = (IMAGE_EMBED, HIGH_RES_FEATS_0, HIGH_RES_FEATS_1)
POINT_COORDS, POINT_LABELS, MASK_INPUT, HAS_MASK_INPUT = "point_coords", "point_labels", "mask_input", "has_mask_input"
PROMPT_INPUTS = (POINT_COORDS, POINT_LABELS, MASK_INPUT, HAS_MASK_INPUT)
DECODER_INPUTS = FEATURES + PROMPT_INPUTS
LOW_RES_MASKS, IOU_SCORES, OBJECT_SCORE_LOGITS = "low_res_masks", "iou_scores", "object_score_logits"
DECODER_OUTPUTS = (LOW_RES_MASKS, IOU_SCORES, OBJECT_SCORE_LOGITS)
NUM_OBJECTS = "num_objects"
NUM_POINTS = "num_points"

LABEL_PAD, LABEL_BG, LABEL_FG, LABEL_BOX_TL, LABEL_BOX_BR = -1, 0, 1, 2, 3
MASK_MODES = ("best", "single")


@dataclass(frozen=True)
class Sam2Settings:
    """``manifest.components["sam2"]``: everything the host side needs besides the graphs.

    Attributes:
        config: the official Hydra config the checkpoint was built with.
        image_size: the model's input size S (``model.image_size``); images are stretched to S x S.
        low_res_size: side of the decoder's mask logits (S/4).
        pixel_mean, pixel_std: normalization on the 0..1 scale (SAM2Transforms' ImageNet values).
        mask_threshold: logit threshold of the final mask (SAM2ImagePredictor's ``mask_threshold``).
        default_mask_mode: ``"best"`` (Seg-Zero: highest predicted IoU of the 3 multimask outputs) or
            ``"single"`` (token 0 with SAM2's stability fallback).
        stability_delta, stability_threshold: the fallback of ``"single"`` (the model's
            ``dynamic_multimask_stability_delta/thresh``, 0.05 / 0.98 with ``build_sam2`` defaults).
        logit_clamp: low-res logits returned for reuse as ``mask_input`` are clamped to +-this.
        max_objects: upper end of the ``num_objects`` profile (objects per decoder call).
    """

    config: str
    image_size: int
    low_res_size: int
    pixel_mean: tuple[float, float, float]
    pixel_std: tuple[float, float, float]
    mask_threshold: float = 0.0
    default_mask_mode: str = "best"
    stability_delta: float = 0.05
    stability_threshold: float = 0.98
    logit_clamp: float = 32.0
    max_objects: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "pixel_mean", tuple(float(v) for v in self.pixel_mean))
        object.__setattr__(self, "pixel_std", tuple(float(v) for v in self.pixel_std))
        problems = []
        if self.image_size <= 0 or self.image_size % 16:
            problems.append(f"image_size {self.image_size} must be a positive multiple of 16")
        if self.low_res_size * 4 != self.image_size:
            problems.append(f"low_res_size {self.low_res_size} must be image_size / 4")
        if len(self.pixel_mean) != 3 or len(self.pixel_std) != 3 or min(self.pixel_std) <= 0:
            problems.append("pixel_mean/pixel_std need 3 values, std > 0")
        if self.default_mask_mode not in MASK_MODES:
            problems.append(f"default_mask_mode {self.default_mask_mode!r} is not one of {MASK_MODES}")
        if not 0 < self.stability_threshold <= 1 or self.stability_delta < 0:
            problems.append("stability_threshold must be in (0, 1] and stability_delta >= 0")
        if self.max_objects < 1:
            problems.append("max_objects must be >= 1")
        if problems:
            raise EngineIncompatibleError(
                "invalid sam2 settings in the manifest: " + "; ".join(problems),
                hint="re-export the sam2 component with `segzero-edge export sam2`",
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pixel_mean"], d["pixel_std"] = list(self.pixel_mean), list(self.pixel_std)
        return d

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Sam2Settings:
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise EngineIncompatibleError(
                f"the manifest's sam2 settings are incomplete: {exc}",
                hint="re-export the sam2 component with `segzero-edge export sam2`",
            ) from exc


def encoder_spec(image_size: int, feature_shapes: Mapping[str, tuple[int, ...]]) -> GraphSpec:
    """The ``sam2.image_encoder`` entry; ``feature_shapes`` maps each of ``FEATURES`` to its shape."""
    return GraphSpec(
        file=ENCODER_FILE,
        inputs=(TensorSpec(IMAGE, "float32", (1, 3, image_size, image_size)),),
        outputs=tuple(TensorSpec(n, "float32", tuple(feature_shapes[n])) for n in FEATURES),
        precision="fp32",
    )


def decoder_spec(
    feature_shapes: Mapping[str, tuple[int, ...]],
    low_res_size: int,
    *,
    objects: tuple[int, int, int] = (1, 1, 16),
    points: tuple[int, int, int] = (1, 4, 16),
) -> GraphSpec:
    """The ``sam2.mask_decoder`` entry, with TensorRT profiles for N objects and P points."""
    n, p, r = NUM_OBJECTS, NUM_POINTS, low_res_size
    return GraphSpec(
        file=DECODER_FILE,
        inputs=(
            *(TensorSpec(name, "float32", tuple(feature_shapes[name])) for name in FEATURES),
            TensorSpec(POINT_COORDS, "float32", (n, p, 2)),
            TensorSpec(POINT_LABELS, "float32", (n, p)),
            TensorSpec(MASK_INPUT, "float32", (n, 1, r, r)),
            TensorSpec(HAS_MASK_INPUT, "float32", (n,)),
        ),
        outputs=(
            TensorSpec(LOW_RES_MASKS, "float32", (n, 4, r, r)),
            TensorSpec(IOU_SCORES, "float32", (n, 4)),
            TensorSpec(OBJECT_SCORE_LOGITS, "float32", (n, 1)),
        ),
        precision="fp32",
        dynamic_dims={n: objects, p: points},
    )


def check_graphs(manifest: Manifest) -> tuple[GraphSpec, GraphSpec]:
    """The encoder and decoder specs, after checking they carry the names this runtime binds.

    Raises:
        ManifestError: the engine has no sam2 graphs.
        EngineIncompatibleError: the graphs' inputs/outputs are not the ones of this contract.
    """
    enc, dec = manifest.graph(ENCODER), manifest.graph(DECODER)
    for name, spec, ins, outs in (
        (ENCODER, enc, ENCODER_INPUTS, FEATURES),
        (DECODER, dec, DECODER_INPUTS, DECODER_OUTPUTS),
    ):
        got_in, got_out = tuple(t.name for t in spec.inputs), tuple(t.name for t in spec.outputs)
        if set(got_in) != set(ins) or set(got_out) != set(outs):
            raise EngineIncompatibleError(
                f"graph {name} has inputs {got_in} and outputs {got_out}; this runtime needs {ins} -> {outs}",
                hint="re-export the sam2 component with this segzero-edge version",
            )
    return enc, dec
