"""``Sam2ExportConfig``: every setting of ``segzero-edge export sam2``, validated."""

from __future__ import annotations

from dataclasses import dataclass

from segzero_edge.errors import ConfigError
from segzero_edge.sam2.configs import resolve_sam2_config
from segzero_edge.sam2.contract import MASK_MODES

from .samples import IMAGE_SIZES


@dataclass(frozen=True)
class Sam2ExportConfig:
    """Export and validation settings.

    Attributes:
        config: official config name in any accepted form (resolved to ``configs/.../*.yaml``), or the
            path of a config file in the official format (kept as given).
        opset: ONNX opset of both graphs (18: LayerNormalization as one op, GELU as Erf; parsed by
            TensorRT 8.6+ and every current ONNX Runtime).
        max_objects: upper end of the ``num_objects`` TensorRT profile (objects per decoder call).
        opt_points, max_points: TensorRT profile of ``num_points`` (box corners count as 2 points;
            Seg-Zero's box + 2 points is 4).
        validation_images: how many synthetic images (of ``samples.IMAGE_SIZES``) the export-time
            validation runs, each with every prompt kind and both mask modes.
        seed: seed of the validation images and prompts.
        encoder_rtol: gate on the encoder outputs: max |diff| <= rtol * max(1, max |reference|).
        decoder_rtol: same for the decoder's mask logits and object score logits.
        score_atol: gate on the predicted IoU scores (already in [0, 1]).
        min_mask_iou: gate on the end-to-end mask IoU, ONNX graphs vs the official pipeline, both fed
            the official preprocessing (fp32: 0.999).
        min_runtime_iou: gate on the end-to-end mask IoU of the full runtime path (numpy/PIL
            preprocessing) vs the official pipeline.
        default_mask_mode: the runtime's default mask choice, ``"best"`` (Seg-Zero) or ``"single"``.
    """

    config: str
    opset: int = 18
    max_objects: int = 16
    opt_points: int = 4
    max_points: int = 16
    validation_images: int = 3
    seed: int = 0
    encoder_rtol: float = 1e-4
    decoder_rtol: float = 1e-4
    score_atol: float = 1e-4
    min_mask_iou: float = 0.999
    min_runtime_iou: float = 0.99
    default_mask_mode: str = "best"

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", resolve_sam2_config(self.config))
        problems = []
        if not 17 <= self.opset <= 21:
            problems.append(f"opset {self.opset} is outside 17..21")
        if self.max_objects < 1:
            problems.append("max_objects must be >= 1")
        if not 1 <= self.opt_points <= self.max_points:
            problems.append("need 1 <= opt_points <= max_points")
        if not 1 <= self.validation_images <= len(IMAGE_SIZES):
            problems.append(f"validation_images must be 1..{len(IMAGE_SIZES)}")
        if min(self.encoder_rtol, self.decoder_rtol, self.score_atol) < 0:
            problems.append("tolerances must be >= 0")
        if not (0 <= self.min_mask_iou <= 1 and 0 <= self.min_runtime_iou <= 1):
            problems.append("IoU gates must be in [0, 1]")
        if self.default_mask_mode not in MASK_MODES:
            problems.append(f"default_mask_mode must be one of {MASK_MODES}")
        if problems:
            raise ConfigError("invalid sam2 export settings: " + "; ".join(problems))
