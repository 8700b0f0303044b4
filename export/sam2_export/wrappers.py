"""Export-only wrappers around the official SAM2 modules (not for direct use).

``ImageEncoderGraph`` is exactly what ``SAM2ImagePredictor.set_image`` computes after preprocessing:
the Hiera trunk + FPN neck, ``conv_s0``/``conv_s1`` of the mask decoder applied to FPN levels 0 and 1,
and the learned ``no_mem_embed`` added to the lowest-resolution level.

``MaskDecoderGraph`` is the official prompt encoder + mask decoder (``PromptEncoder._embed_points`` with
``pad=True``, then ``MaskDecoder.predict_masks``), returning all four mask tokens so that the host can
apply either official mask choice. Two things are re-expressed for export, with identical arithmetic:

* the label lookups of ``_embed_points`` (a chain of ``torch.where``) become multiplications by 0/1
  masks: ``pe * (1 - pad) + pad * not_a_point`` and ``+ (label == i) * point_embeddings[i]``. Adding
  ``0 * w`` or multiplying by 1 is exact in IEEE arithmetic, so the values are bit-for-bit the same;
* the optional previous mask is blended with ``has_mask_input`` (1 or 0 per object):
  ``has * mask_downscaling(mask_input) + (1 - has) * no_mask_embed``, equal to the official branch
  taken with ``masks=mask_input`` or ``masks=None``.

Two modules of the decoder's output upscaling are swapped, in an export-only copy, for forms ONNX
Runtime runs in one pass (same maths; float rounding differs in the last bits, e.g. max |diff| 2.6e-6 on
hiera-t mask logits of magnitude 2.4, far inside the export gates):

* ``LayerNorm2d`` (mean/variance over channels of NCHW, 9 ops with two strided reductions) becomes
  NHWC ``layer_norm`` between two transposes (one ``LayerNormalization`` node);
* ``GELU`` (exported as ``0.5 * (1 + erf(x / sqrt 2)) * x``, a pattern ONNX Runtime does not fuse)
  becomes ``x * (1 + erf(x / sqrt 2)) * 0.5``, which ONNX Runtime fuses into one ``Gelu`` kernel.

Both are standard ONNX ops (opset 18), so TensorRT parses the graph as before. Effect on the decoder's
time: benchmarks/results/sam2_decoder_forms_1t.md (bench_sam2_decoder_forms.py).

The image features come in with batch 1 and are broadcast to the N objects (the official
``repeat_image=True`` path), so N is a free dynamic dimension of the graph.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


class _ErfGelu(nn.Module):
    """Exact (erf) GELU written as ``x * (1 + erf(x / sqrt 2)) * 0.5`` (ONNX Runtime's Gelu pattern)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * (1.0 + torch.erf(x / math.sqrt(2.0)))) * 0.5


class _ChannelsLastLayerNorm(nn.Module):
    """SAM2's ``LayerNorm2d`` ([B,C,H,W], normalized over C) as NHWC ``layer_norm``, same parameters."""

    def __init__(self, ln: nn.Module) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = ln.weight, ln.bias, float(ln.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def export_friendly_decoder(decoder: nn.Module) -> nn.Module:
    """A copy of the official ``MaskDecoder`` whose output upscaling uses the modules above.

    ``output_upscaling`` is ``(ConvTranspose2d, LayerNorm2d, GELU, ConvTranspose2d, GELU)`` in every
    official config; anything else is left as it is. The model itself (the validation oracle) is untouched.
    """
    up = decoder.output_upscaling
    if len(up) != 5 or not all(isinstance(up[i], nn.GELU) and up[i].approximate == "none" for i in (2, 4)):
        return decoder
    if type(up[1]).__name__ != "LayerNorm2d":
        return decoder
    decoder = copy.deepcopy(decoder)
    up = decoder.output_upscaling
    up[1] = _ChannelsLastLayerNorm(up[1])
    up[2], up[4] = _ErfGelu(), _ErfGelu()
    return decoder


class ImageEncoderGraph(nn.Module):
    """``image`` [1,3,S,S] (normalized) -> ``image_embed`` [1,C,S/16,S/16], ``high_res_feats_0``
    [1,C/8,S/4,S/4], ``high_res_feats_1`` [1,C/4,S/8,S/8] (S = model.image_size, C = 256)."""

    def __init__(self, model: nn.Module, feat_sizes: list[tuple[int, int]]) -> None:
        super().__init__()
        self.model = model
        self.feat_sizes = [tuple(s) for s in feat_sizes]  # [(256,256), (128,128), (64,64)] for S=1024

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = self.model
        backbone_out = m.forward_image(image)
        _, vision_feats, _, _ = m._prepare_backbone_features(backbone_out)
        if m.directly_add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + m.no_mem_embed
        # (HW, 1, C) -> (1, C, H, W), as SAM2ImagePredictor.set_image does.
        feats = [f.permute(1, 2, 0).reshape(1, -1, *size) for f, size in zip(vision_feats, self.feat_sizes)]
        return feats[2], feats[0], feats[1]


class MaskDecoderGraph(nn.Module):
    """Prompt encoder + mask decoder for N objects at once (see the module docstring).

    Inputs: ``image_embed`` [1,256,64,64], ``high_res_feats_0`` [1,32,256,256], ``high_res_feats_1``
    [1,64,128,128], ``point_coords`` [N,P,2] (x, y in model-input pixels, i.e. 1024 space),
    ``point_labels`` [N,P] float (1 fg, 0 bg, 2/3 box corners, -1 padding), ``mask_input``
    [N,1,256,256] (previous low-res logits), ``has_mask_input`` [N] (1.0 uses ``mask_input``).

    Outputs: ``low_res_masks`` [N,4,256,256] logits (token 0 = single-mask output, 1..3 = multimask),
    ``iou_scores`` [N,4], ``object_score_logits`` [N,1].
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.prompt_encoder = model.sam_prompt_encoder
        self.mask_decoder = export_friendly_decoder(model.sam_mask_decoder)
        h, w = self.prompt_encoder.input_image_size
        # Divisors of (x, y): the official forward_with_coords divides x by W and y by H.
        self.register_buffer("input_wh", torch.tensor([float(w), float(h)]), persistent=False)
        # Constant per model: the positional encoding of the 64x64 grid (get_dense_pe()).
        self.register_buffer("dense_pe", self.prompt_encoder.get_dense_pe().detach().clone(), persistent=False)

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pe_layer = self.prompt_encoder.pe_layer
        coords = coords + 0.5  # centre of the pixel
        # The official encoder always appends one padding point (0, 0) with label -1 (boxes=None).
        coords = torch.cat([coords, torch.zeros_like(coords[:, :1, :])], dim=1)
        labels = torch.cat([labels, -torch.ones_like(labels[:, :1])], dim=1)
        pe = pe_layer._pe_encoding(coords / self.input_wh)
        is_pad = (labels == -1).unsqueeze(-1).to(pe.dtype)
        emb = pe * (1.0 - is_pad) + is_pad * self.prompt_encoder.not_a_point_embed.weight
        for i, table in enumerate(self.prompt_encoder.point_embeddings):
            emb = emb + (labels == i).unsqueeze(-1).to(pe.dtype) * table.weight
        return emb

    def forward(
        self,
        image_embed: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pe = self.prompt_encoder
        sparse = self._embed_points(point_coords, point_labels)
        has = has_mask_input.reshape(-1, 1, 1, 1)
        dense = has * pe.mask_downscaling(mask_input) + (1.0 - has) * pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        n = sparse.shape[0]
        masks, iou_pred, _, object_score_logits = self.mask_decoder.predict_masks(
            image_embeddings=image_embed.expand(n, -1, -1, -1),
            image_pe=self.dense_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=False,
            high_res_features=[high_res_feats_0, high_res_feats_1],
        )
        return masks, iou_pred, object_score_logits
