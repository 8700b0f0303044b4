"""The tracker part of the engine-directory contract: SAM2's video memory as three graphs, and its settings.

Written by the exporter (``segzero-edge export tracker``, also run by ``export sam2``) and read by the
runtime; defined here once. The tracker reuses the ``sam2.image_encoder`` graph of the same checkpoint
(its ``image_embed`` is the top-level feature with ``no_mem_embed`` added; the graphs below subtract it
where SAM2 uses the raw feature). With C = hidden dim (256), D = memory dim (64), h = w = S/16, r = S/4,
M = ``num_maskmem`` (7), K = ``max_obj_ptrs`` (16), N objects (dynamic):

* ``tracker.memory_attention`` (``tracker/memory_attention.onnx``): ``image_embed`` [1,C,h,w],
  ``memory_features`` [N,M,D,h,w] (spatial memories, float32 values of bfloat16 numbers), ``memory_tpos`` [M]
  int64 (row of ``maskmem_tpos_enc`` per slot), ``memory_valid`` [M] bool, ``obj_ptrs`` [N,K,C],
  ``ptr_tpos`` [K] float32 (frame distance / ``t_diff_max``), ``ptr_valid`` [K] bool -> ``pix_feat``
  [N,C,h,w]. Invalid slots are masked out of the attention (a fixed-shape bank); at least one slot
  is always valid (the prompt frame). RoPE is real-valued (cos/sin tables in the graph).
* ``tracker.mask_decoder`` (``tracker/mask_decoder.onnx``): ``pix_feat`` [N,C,h,w], ``high_res_feats_0``
  [1,C/8,4h,4w], ``high_res_feats_1`` [1,C/4,2h,2w], ``point_coords`` [N,P,2], ``point_labels`` [N,P]
  (as ``sam2.mask_decoder``; P = 1 with label -1 on tracked frames) -> ``low_res_masks`` [N,4,r,r],
  ``iou_scores`` [N,4], ``object_score_logits`` [N,1], ``obj_ptrs`` [N,4,C] (the object pointer of
  each mask token, with SAM2's no-object pointer blended in where ``object_score_logits <= 0``).
* ``tracker.memory_encoder`` (``tracker/memory_encoder.onnx``): ``image_embed`` [1,C,h,w],
  ``mask_logits`` [N,1,r,r] (the chosen mask, -1024 where no object), ``object_score_logits`` [N,1],
  ``binarize`` [N] bool (True on prompted frames: the video builder's ``binarize_mask_from_pts``)
  -> ``maskmem_features`` [N,D,h,w] (``no_obj_embed_spatial`` added where the object is absent).
* ``tracker.mask_prompt`` (``tracker/mask_prompt.onnx``), for tracks started from a mask (SAM2's
  ``add_new_mask`` with ``use_mask_input_as_output_without_sam``): ``image_embed`` [1,C,h,w],
  ``high_res_feats_0``, ``high_res_feats_1``, ``mask_inputs`` [N,1,S,S] float32 (0/1, the mask at the model's
  input size) -> ``obj_ptr`` [N,C] (``_use_mask_as_output``: the SAM heads on the raw feature with the
  mask as dense prompt and one padding point, token 0's pointer, the no-object pointer blended in by the
  decoder's object score and then by whether the mask is empty). Engines exported before this graph
  existed lack it; ``check_graphs`` leaves it out then and only mask-started tracks need it.
* ``tracker.image_encoder`` (``tracker/image_encoder.onnx``), only when the tracker comes from another
  checkpoint than the ``sam2`` component: the same I/O as ``sam2.image_encoder``, from the tracker's own
  checkpoint. A LENS engine needs it: LENS fine-tunes SAM2's mask decoder, whose ``conv_s0``/``conv_s1`` make
  the high-res features, so its ``sam2.image_encoder`` is not the stock SAM2's the memory modules come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import EngineIncompatibleError
from ..manifest import GraphSpec, Manifest, TensorSpec
from ..sam2.contract import ENCODER_INPUTS as SAM2_ENCODER_INPUTS
from ..sam2.contract import (
    FEATURES,
    HIGH_RES_FEATS_0,
    HIGH_RES_FEATS_1,
    IMAGE_EMBED,
    IOU_SCORES,
    LOW_RES_MASKS,
    NUM_OBJECTS,
    NUM_POINTS,
    OBJECT_SCORE_LOGITS,
    POINT_COORDS,
    POINT_LABELS,
)

COMPONENT = "tracker"
MEMORY_ATTENTION = "tracker.memory_attention"
MASK_DECODER = "tracker.mask_decoder"
MEMORY_ENCODER = "tracker.memory_encoder"
MEMORY_ATTENTION_FILE = "tracker/memory_attention.onnx"
MASK_DECODER_FILE = "tracker/mask_decoder.onnx"
MEMORY_ENCODER_FILE = "tracker/memory_encoder.onnx"
MASK_PROMPT = "tracker.mask_prompt"
MASK_PROMPT_FILE = "tracker/mask_prompt.onnx"
IMAGE_ENCODER = "tracker.image_encoder"
IMAGE_ENCODER_FILE = "tracker/image_encoder.onnx"

# Tensors shared with the sam2 component's graphs carry its names (imported above).
MEMORY, MEMORY_TPOS, MEMORY_VALID = "memory_features", "memory_tpos", "memory_valid"
OBJ_PTRS, PTR_TPOS, PTR_VALID = "obj_ptrs", "ptr_tpos", "ptr_valid"
PIX_FEAT = "pix_feat"
MASK_LOGITS, BINARIZE, MASKMEM_FEATURES = "mask_logits", "binarize", "maskmem_features"
MASK_INPUTS, OBJ_PTR = "mask_inputs", "obj_ptr"

ATTENTION_INPUTS = (IMAGE_EMBED, MEMORY, MEMORY_TPOS, MEMORY_VALID, OBJ_PTRS, PTR_TPOS, PTR_VALID)
ATTENTION_OUTPUTS = (PIX_FEAT,)
DECODER_INPUTS = (PIX_FEAT, HIGH_RES_FEATS_0, HIGH_RES_FEATS_1, POINT_COORDS, POINT_LABELS)
DECODER_OUTPUTS = (LOW_RES_MASKS, IOU_SCORES, OBJECT_SCORE_LOGITS, OBJ_PTRS)
ENCODER_INPUTS = (IMAGE_EMBED, MASK_LOGITS, OBJECT_SCORE_LOGITS, BINARIZE)
ENCODER_OUTPUTS = (MASKMEM_FEATURES,)
MASK_PROMPT_INPUTS = (IMAGE_EMBED, HIGH_RES_FEATS_0, HIGH_RES_FEATS_1, MASK_INPUTS)
MASK_PROMPT_OUTPUTS = (OBJ_PTR,)

#: SAM2's logits for a mask given as input (``_use_mask_as_output``): 20 * mask - 10, so sigmoid is 4.5e-5 off 0/1.
MASK_INPUT_SCALE, MASK_INPUT_BIAS = 20.0, -10.0

#: SAM2's mask logit for "no object" (``sam2_base.NO_OBJ_SCORE``).
NO_OBJ_SCORE = -1024.0


@dataclass(frozen=True)
class TrackerSettings:
    """``manifest.components["tracker"]``: what the host side of tracking needs besides the graphs.

    Attributes:
        config: the official config of the checkpoint (as the sam2 component's).
        sam2_sha256: sha256 of the SAM2 checkpoint; must equal the sam2 component's source unless the tracker
            has its own image encoder (``tracker.image_encoder``).
        image_size, low_res_size: S and r = S/4 (as the sam2 component's).
        hidden_dim, mem_dim, feat_size: C, D and h = w = S/16.
        num_maskmem: M, memory slots (the prompt frame + M-1 most recent frames).
        max_obj_ptrs: K, object-pointer slots (the prompt frame + K-1 most recent frames).
        t_diff_max: the pointers' temporal-encoding scale (``min(num_frames, K) - 1`` in the official
            predictor; a stream has no length, so K - 1, which equals the official value for clips of
            K frames or more).
        pixel_mean, pixel_std: the video predictor's normalization (0..1 scale).
        multimask_output_in_sam, multimask_output_for_tracking, multimask_min_pt_num,
            multimask_max_pt_num, use_multimask_token_for_obj_ptr: SAM2Base's mask-choice flags.
        stability_delta, stability_threshold: the single-mask stability fallback (video builder).
        binarize_mask_from_pts: prompted frames' masks enter memory binarized (video builder).
        mask_threshold: logit threshold of the returned masks.
    """

    config: str
    sam2_sha256: str
    image_size: int
    low_res_size: int
    hidden_dim: int
    mem_dim: int
    feat_size: int
    num_maskmem: int = 7
    max_obj_ptrs: int = 16
    t_diff_max: int = 15
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    multimask_output_in_sam: bool = True
    multimask_output_for_tracking: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    use_multimask_token_for_obj_ptr: bool = True
    stability_delta: float = 0.05
    stability_threshold: float = 0.98
    binarize_mask_from_pts: bool = True
    mask_threshold: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "pixel_mean", tuple(float(v) for v in self.pixel_mean))
        object.__setattr__(self, "pixel_std", tuple(float(v) for v in self.pixel_std))
        problems = []
        if self.image_size <= 0 or self.image_size % 16 or self.low_res_size * 4 != self.image_size:
            problems.append(f"image_size {self.image_size} / low_res_size {self.low_res_size} do not fit")
        if self.feat_size * 16 != self.image_size:
            problems.append(f"feat_size {self.feat_size} must be image_size / 16")
        if self.num_maskmem < 1 or self.max_obj_ptrs < 1 or self.t_diff_max < 1:
            problems.append("num_maskmem, max_obj_ptrs and t_diff_max must be >= 1")
        if self.hidden_dim <= 0 or self.mem_dim <= 0 or self.hidden_dim % self.mem_dim:
            problems.append(f"mem_dim {self.mem_dim} must divide hidden_dim {self.hidden_dim}")
        if len(self.pixel_mean) != 3 or len(self.pixel_std) != 3 or min(self.pixel_std) <= 0:
            problems.append("pixel_mean/pixel_std need 3 values, std > 0")
        if problems:
            raise EngineIncompatibleError(
                "invalid tracker settings in the manifest: " + "; ".join(problems),
                hint="re-export with `segzero-edge export tracker`",
            )

    @property
    def ptr_tokens(self) -> int:
        """Memory tokens per object pointer (C / D: a pointer is split into D-wide tokens)."""
        return self.hidden_dim // self.mem_dim

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pixel_mean"], d["pixel_std"] = list(self.pixel_mean), list(self.pixel_std)
        return d

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TrackerSettings:
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise EngineIncompatibleError(
                f"the manifest's tracker settings are incomplete: {exc}",
                hint="re-export with `segzero-edge export tracker`",
            ) from exc


def graph_specs(s: TrackerSettings, *, max_objects: int = 16, max_points: int = 16) -> dict[str, GraphSpec]:
    """The four graphs' manifest entries, with TensorRT profiles for N objects and P points."""
    n, p = NUM_OBJECTS, NUM_POINTS
    c, d, h, r, m, k = s.hidden_dim, s.mem_dim, s.feat_size, s.low_res_size, s.num_maskmem, s.max_obj_ptrs
    objects = {n: (1, 1, max_objects)}
    f32 = "float32"
    embed = TensorSpec(IMAGE_EMBED, f32, (1, c, h, h))
    return {
        MEMORY_ATTENTION: GraphSpec(
            file=MEMORY_ATTENTION_FILE,
            inputs=(
                embed,
                TensorSpec(MEMORY, f32, (n, m, d, h, h)),
                TensorSpec(MEMORY_TPOS, "int64", (m,)),
                TensorSpec(MEMORY_VALID, "bool", (m,)),
                TensorSpec(OBJ_PTRS, f32, (n, k, c)),
                TensorSpec(PTR_TPOS, f32, (k,)),
                TensorSpec(PTR_VALID, "bool", (k,)),
            ),
            outputs=(TensorSpec(PIX_FEAT, f32, (n, c, h, h)),),
            precision="fp32",
            dynamic_dims=objects,
        ),
        MASK_DECODER: GraphSpec(
            file=MASK_DECODER_FILE,
            inputs=(
                TensorSpec(PIX_FEAT, f32, (n, c, h, h)),
                TensorSpec(HIGH_RES_FEATS_0, f32, (1, c // 8, 4 * h, 4 * h)),
                TensorSpec(HIGH_RES_FEATS_1, f32, (1, c // 4, 2 * h, 2 * h)),
                TensorSpec(POINT_COORDS, f32, (n, p, 2)),
                TensorSpec(POINT_LABELS, f32, (n, p)),
            ),
            outputs=(
                TensorSpec(LOW_RES_MASKS, f32, (n, 4, r, r)),
                TensorSpec(IOU_SCORES, f32, (n, 4)),
                TensorSpec(OBJECT_SCORE_LOGITS, f32, (n, 1)),
                TensorSpec(OBJ_PTRS, f32, (n, 4, c)),
            ),
            precision="fp32",
            dynamic_dims={**objects, p: (1, 4, max_points)},
        ),
        MEMORY_ENCODER: GraphSpec(
            file=MEMORY_ENCODER_FILE,
            inputs=(
                embed,
                TensorSpec(MASK_LOGITS, f32, (n, 1, r, r)),
                TensorSpec(OBJECT_SCORE_LOGITS, f32, (n, 1)),
                TensorSpec(BINARIZE, "bool", (n,)),
            ),
            outputs=(TensorSpec(MASKMEM_FEATURES, f32, (n, d, h, h)),),
            precision="fp32",
            dynamic_dims=objects,
        ),
        MASK_PROMPT: GraphSpec(
            file=MASK_PROMPT_FILE,
            inputs=(
                embed,
                TensorSpec(HIGH_RES_FEATS_0, f32, (1, c // 8, 4 * h, 4 * h)),
                TensorSpec(HIGH_RES_FEATS_1, f32, (1, c // 4, 2 * h, 2 * h)),
                TensorSpec(MASK_INPUTS, f32, (n, 1, s.image_size, s.image_size)),
            ),
            outputs=(TensorSpec(OBJ_PTR, f32, (n, c)),),
            precision="fp32",
            dynamic_dims=objects,
        ),
    }


def missing_mask_prompt() -> EngineIncompatibleError:
    """The error of a mask-started track on an engine without ``tracker.mask_prompt``."""
    return EngineIncompatibleError(
        "this engine's tracker has no mask-prompt graph, so a track cannot start from a mask",
        hint="re-export the tracker with this segzero-edge version (`segzero-edge export tracker`), "
        "or start the track from a box or points",
    )


def check_graphs(manifest: Manifest) -> dict[str, GraphSpec]:
    """The tracker graphs, after checking they carry the names this runtime binds (``tracker.mask_prompt``
    and ``tracker.image_encoder`` only when the engine has them).

    Raises:
        ManifestError: the engine has no tracker graphs.
        EngineIncompatibleError: a graph's inputs/outputs are not the ones of this contract.
    """
    wanted = {
        MEMORY_ATTENTION: (ATTENTION_INPUTS, ATTENTION_OUTPUTS),
        MASK_DECODER: (DECODER_INPUTS, DECODER_OUTPUTS),
        MEMORY_ENCODER: (ENCODER_INPUTS, ENCODER_OUTPUTS),
        MASK_PROMPT: (MASK_PROMPT_INPUTS, MASK_PROMPT_OUTPUTS),
        IMAGE_ENCODER: (SAM2_ENCODER_INPUTS, FEATURES),
    }
    specs = {}
    for name, (ins, outs) in wanted.items():
        if name in (MASK_PROMPT, IMAGE_ENCODER) and name not in manifest.graphs:
            continue
        spec = manifest.graph(name)
        got_in, got_out = tuple(t.name for t in spec.inputs), tuple(t.name for t in spec.outputs)
        if set(got_in) != set(ins) or set(got_out) != set(outs):
            raise EngineIncompatibleError(
                f"graph {name} has inputs {got_in} and outputs {got_out}; this runtime needs {ins} -> {outs}",
                hint="re-export with `segzero-edge export tracker` of this segzero-edge version",
            )
        specs[name] = spec
    return specs
