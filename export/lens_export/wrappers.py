"""Export-friendly torch modules of LENS's graphs (the official SAM2 and ``reference.lens`` modules inside)."""

from __future__ import annotations

import torch
from torch import nn

from ..sam2_export.wrappers import export_friendly_decoder


class ContextGraph(nn.Module):
    """``LensContext`` with ``conv_1d`` as a Linear over the flattened ``[B, 1, H * Q]`` tokens.

    Conv1d(H, H, kernel=Q) over ``x^T [B, H, Q]`` computes ``y[o] = sum_{i,k} W[o, i, k] x[k, i]``: a Linear
    with weight ``W.reshape(H, H * Q)`` applied to ``x^T`` flattened in ``(i, k)`` order. Input and output
    are 3-D so that the exporter writes ``MatMul`` (not ``Gemm``), which the weight-only quantizer handles.
    """

    def __init__(self, context: nn.Module) -> None:
        super().__init__()
        self.connector = context.connector
        conv = context.conv_1d
        h, _, q = conv.weight.shape
        self.flat = nn.Linear(h * q, h)
        with torch.no_grad():
            self.flat.weight.copy_(conv.weight.reshape(h, h * q))
            self.flat.bias.copy_(conv.bias)
        self.proj_to_sam = context.proj_to_sam

    def forward(self, query_hidden: torch.Tensor) -> torch.Tensor:
        x = self.connector(query_hidden)  # [B, Q, H]
        b = x.shape[0]
        x = self.flat(x.transpose(1, 2).reshape(b, 1, -1))  # [B, 1, H]
        return self.proj_to_sam(x)


class SparseMaskDecoderGraph(nn.Module):
    """Features + ``sparse_prompt [N, S, D]`` -> ``low_res_masks [N, 4, r, r]``, ``iou_scores [N, 4]``,
    ``object_score_logits [N, 1]``: SAM2's mask decoder with the prompt tokens as given and the no-mask
    dense embedding (what the official prompt encoder returns for ``masks=None``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        pe = model.sam_prompt_encoder
        self.mask_decoder = export_friendly_decoder(model.sam_mask_decoder)
        self.register_buffer("dense_pe", pe.get_dense_pe().detach().clone(), persistent=False)
        self.register_buffer("no_mask", pe.no_mask_embed.weight.detach().clone().reshape(1, -1, 1, 1), persistent=False)

    def forward(self, image_embed, high_res_feats_0, high_res_feats_1, sparse_prompt):
        n = sparse_prompt.shape[0]
        masks, iou_pred, _, object_score_logits = self.mask_decoder.predict_masks(
            image_embeddings=image_embed.expand(n, -1, -1, -1),
            image_pe=self.dense_pe,
            sparse_prompt_embeddings=sparse_prompt,
            dense_prompt_embeddings=self.no_mask,
            repeat_image=False,
            high_res_features=[high_res_feats_0, high_res_feats_1],
        )
        return masks, iou_pred, object_score_logits
