"""Export-only wrappers of SAM2's video path around the official modules (their weights, their code).

* ``TrackDecoderGraph``: SAM2Base's ``_forward_sam_heads`` up to the mask choice, for N objects: the
  official prompt encoder and mask decoder (``sam2_export.wrappers.MaskDecoderGraph``'s export forms)
  with no mask input, all four mask tokens returned, and ``obj_ptr_proj`` applied to each token with the
  no-object pointer blended in (``fixed_no_obj_ptr``/``soft_no_obj_ptr`` as configured). The host picks
  the token (``_use_multimask`` + argmax or the stability fallback), which selects mask and pointer alike.
* ``MaskPromptGraph``: the object pointer of a frame prompted with a mask (``_use_mask_as_output``).
* ``MemoryAttentionGraph``: ``_prepare_memory_conditioned_features`` + ``MemoryAttention`` over a
  fixed-shape bank. Each ``MemoryAttentionLayer`` is re-expressed with its own modules: RoPE becomes the
  real-valued rotation ``(x0 cos - x1 sin, x0 sin + x1 cos)`` with the cos/sin tables taken from the
  official ``compute_axial_cis`` (``view_as_complex`` does not export), and the cross-attention masks
  out invalid slots (softmax weight exactly 0, so a masked slot is the same as an absent one). Spatial
  positions (``maskmem_pos_enc`` and the image's sine encoding) depend only on shapes and are constants.
* ``MemoryEncoderGraph``: ``_encode_new_memory``: the chosen low-res mask upsampled to S x S, binarized
  (prompted frames) or sigmoid, scaled and biased, the official ``MemoryEncoder``, plus
  ``no_obj_embed_spatial`` where the object score is <= 0.

``image_embed`` carries ``no_mem_embed`` (``sam2.image_encoder``'s output); the memory graphs subtract it to
get SAM2's raw top-level feature. ``(x + e) - e`` differs from ``x`` by at most half an ulp of ``x + e``
(about 1e-7 relative), far below the ONNX-vs-torch kernel differences the validation measures.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..sam2_export.wrappers import MaskDecoderGraph


def _rope_tables(attn: nn.Module, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin ``[side*side, d/2]`` of an official ``RoPEAttention`` (its own ``compute_cis``)."""
    cis = attn.compute_cis(end_x=side, end_y=side)
    return cis.real.float().contiguous(), cis.imag.float().contiguous()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``[..., L, d]`` times ``exp(i theta)`` per (even, odd) pair; ``cos``/``sin`` are ``[L, d/2]``."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).reshape(x.shape)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def _weights(q: torch.Tensor, k: torch.Tensor, key_valid: torch.Tensor | None) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d))`` over ``[B, heads, L, d]``; ``key_valid`` [Lk] bool masks keys out.

    ``q`` is scaled before the product (one pass over ``[Lq, d]`` instead of over the ``[Lq, Lk]`` scores).
    The mask rides along in the product: ``q`` gets a column of ones and ``k`` a column holding 0 (valid) or
    -inf (masked), so each score is ``q.k + 0`` or ``-inf`` straight out of the matrix product, with no
    pass over the ``[Lq, Lk]`` scores (ONNX Runtime's broadcast ``Where`` took 390 ms a call on hiera-t's
    4096 x 28,736 scores, a broadcast ``Add`` about 100 ms).
    """
    q = q * (1.0 / math.sqrt(q.shape[-1]))
    if key_valid is not None:
        bias = torch.zeros(key_valid.shape, dtype=k.dtype).masked_fill(~key_valid, float("-inf"))
        q = torch.cat([q, torch.ones_like(q[..., :1])], dim=-1)
        k = torch.cat([k, bias.reshape(1, 1, -1, 1).expand(k.shape[0], k.shape[1], -1, 1)], dim=-1)
    return torch.softmax(torch.matmul(q, k.transpose(-1, -2)), dim=-1)


class _RopeAttention(nn.Module):
    """An official ``RoPEAttention`` (its projections) with real-valued RoPE and an optional key mask.

    When the values come in narrower than the attention (the memory's cross-attention: 64 -> 256), the
    value projection is applied after the weighting: ``A (X W^T + b) = (A X) W^T + b`` because each row of
    ``A`` sums to 1. Same product, a quarter of the multiply-adds of ``A V`` for SAM2's memory (the largest
    product of a tracked frame); the sums run in another order (float rounding, within the validation gates).
    """

    def __init__(self, attn: nn.Module, table: int) -> None:
        super().__init__()
        self.attn = attn
        self.table = table  # index of its cos/sin pair in the parent's tables

    def forward(self, q, k, v, cos, sin, *, rope_k_slots: int = 1, k_exclude: int = 0, key_valid=None):
        a = self.attn
        heads = a.num_heads
        q = _split_heads(a.q_proj(q), heads)
        k = _split_heads(a.k_proj(k), heads)
        late_v = v.shape[-1] < a.internal_dim  # project the values after the weighting (see the class doc)
        v = v.unsqueeze(1) if late_v else _split_heads(a.v_proj(v), heads)
        q = _rotate(q, cos, sin)
        n_rope = k.shape[-2] - k_exclude
        k_rope, k_rest = k[:, :, :n_rope], k[:, :, n_rope:]
        b, h, _, d = k_rope.shape
        # rope_k_repeat: the same table for each memory slot (the official repeats freqs_cis per slot).
        k_rope = _rotate(k_rope.reshape(b, h, rope_k_slots, -1, d), cos, sin).reshape(b, h, -1, d)
        k = torch.cat([k_rope, k_rest], dim=2) if k_exclude else k_rope
        out = torch.matmul(_weights(q, k, key_valid), v)  # [B, heads, Lq, d] (or [.., kv_dim] when late_v)
        if late_v:
            w = a.v_proj.weight.reshape(heads, -1, v.shape[-1])  # [heads, d, kv_dim]
            out = torch.matmul(out, w.transpose(-1, -2)) + a.v_proj.bias.reshape(heads, 1, -1)
        out = out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)
        return a.out_proj(out)


def _sine_pe_1d(pos: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """``sam2_utils.get_1d_sine_pe`` (same arithmetic, same order)."""
    pe_dim = dim // 2
    dim_t = torch.arange(pe_dim, dtype=torch.float32)
    dim_t = temperature ** (2 * (dim_t // 2) / pe_dim)
    pos_embed = pos.unsqueeze(-1) / dim_t
    return torch.cat([pos_embed.sin(), pos_embed.cos()], dim=-1)


class MemoryAttentionGraph(nn.Module):
    """Memory-conditioned features of the current frame for N objects (see the module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        ma = model.memory_attention
        if not ma.batch_first:
            raise NotImplementedError("MemoryAttention(batch_first=False) is not in any official config")
        self.c, self.d = int(model.hidden_dim), int(model.mem_dim)
        self.side = int(model.sam_prompt_encoder.image_embedding_size[0])
        self.m = int(model.num_maskmem)
        self.layers = ma.layers
        self.norm = ma.norm
        self.pos_enc_at_input = bool(ma.pos_enc_at_input)
        # One cos/sin pair per distinct table (every official config has one: all attentions share it).
        tables: list[tuple[torch.Tensor, torch.Tensor]] = []

        def wrap(attn: nn.Module) -> _RopeAttention:
            cos, sin = _rope_tables(attn, self.side)
            for i, (c, s) in enumerate(tables):
                if c.shape == cos.shape and torch.equal(c, cos) and torch.equal(s, sin):
                    return _RopeAttention(attn, i)
            tables.append((cos, sin))
            return _RopeAttention(attn, len(tables) - 1)

        self.self_attn = nn.ModuleList(wrap(layer.self_attn) for layer in ma.layers)
        self.cross_attn = nn.ModuleList(wrap(layer.cross_attn_image) for layer in ma.layers)
        for i, (cos, sin) in enumerate(tables):
            self.register_buffer(f"rope_cos_{i}", cos, persistent=False)
            self.register_buffer(f"rope_sin_{i}", sin, persistent=False)
        self.obj_ptr_tpos_proj = model.obj_ptr_tpos_proj
        self.add_tpos = bool(model.add_tpos_enc_to_obj_ptrs)
        self.tpos_dim = self.c if model.proj_tpos_enc_in_obj_ptrs else self.d
        with torch.no_grad():
            s = self.side
            curr_pos = model.image_encoder.neck.position_encoding(torch.zeros(1, self.c, s, s))
            mem_pos = model.memory_encoder.position_encoding(torch.zeros(1, self.d, s, s))
        self.register_buffer("no_mem_embed", model.no_mem_embed.detach().reshape(1, self.c, 1, 1).clone(), False)
        self.register_buffer("curr_pos", curr_pos.flatten(2).transpose(1, 2).contiguous(), False)  # [1, hw, C]
        self.register_buffer("mem_pos", mem_pos.flatten(2).transpose(1, 2)[0].contiguous(), False)  # [hw, D]
        self.register_buffer("tpos_table", model.maskmem_tpos_enc.detach().reshape(self.m, self.d).clone(), False)

    def _table(self, attn: _RopeAttention) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"rope_cos_{attn.table}"), getattr(self, f"rope_sin_{attn.table}")

    def forward(self, image_embed, memory_features, memory_tpos, memory_valid, obj_ptrs, ptr_tpos, ptr_valid):
        memory = memory_features
        n, m, d = memory.shape[0], memory.shape[1], self.d
        hw = self.side * self.side
        x = (image_embed - self.no_mem_embed).flatten(2).transpose(1, 2).expand(n, -1, -1)  # [N, hw, C]
        curr_pos = self.curr_pos.expand(n, -1, -1)
        # Spatial memory: [N, M, D, h, w] -> [N, M*hw, D]; position = sine(hw) + temporal row per slot.
        mem = memory.flatten(3).transpose(2, 3).reshape(n, m * hw, d)
        mem_pos = (self.mem_pos.unsqueeze(0) + self.tpos_table[memory_tpos].unsqueeze(1)).reshape(1, m * hw, d)
        # Object pointers: [N, K, C] -> K*(C/D) tokens of width D, each pointer's chunks in order.
        k_ptr = obj_ptrs.shape[1]
        split = self.c // d
        ptrs = obj_ptrs.reshape(n, k_ptr * split, d)
        if self.add_tpos:
            ptr_pos = self.obj_ptr_tpos_proj(_sine_pe_1d(ptr_tpos, self.tpos_dim))  # [K, D]
        else:
            ptr_pos = torch.zeros(k_ptr, d, dtype=obj_ptrs.dtype)
        ptr_pos = ptr_pos.repeat_interleave(split, dim=0).unsqueeze(0)
        keys = torch.cat([mem, ptrs], dim=1)
        keys_pos = torch.cat([mem_pos, ptr_pos], dim=1).expand(n, -1, -1)
        valid = torch.cat([memory_valid.repeat_interleave(hw), ptr_valid.repeat_interleave(split)])
        out = x + 0.1 * curr_pos if self.pos_enc_at_input else x
        for layer, sa, ca in zip(self.layers, self.self_attn, self.cross_attn):
            t = layer.norm1(out)
            qk = t + curr_pos if layer.pos_enc_at_attn else t
            out = out + sa(qk, qk, t, *self._table(sa))
            t = layer.norm2(out)
            out = out + ca(
                t + curr_pos if layer.pos_enc_at_cross_attn_queries else t,
                keys + keys_pos if layer.pos_enc_at_cross_attn_keys else keys,
                keys,
                *self._table(ca),
                rope_k_slots=m,
                k_exclude=k_ptr * split,
                key_valid=valid,
            )
            t = layer.norm3(out)
            out = out + layer.linear2(layer.activation(layer.linear1(t)))
        out = self.norm(out)
        return out.transpose(1, 2).reshape(n, self.c, self.side, self.side)


class TrackDecoderGraph(nn.Module):
    """SAM heads of a tracked frame (see the module docstring): ``pix_feat`` [N,C,h,w] + prompts ->
    ``low_res_masks`` [N,4,r,r], ``iou_scores`` [N,4], ``object_score_logits`` [N,1], ``obj_ptrs`` [N,4,C]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.heads = MaskDecoderGraph(model)
        self.obj_ptr_proj = model.obj_ptr_proj
        self.pred_obj_scores = bool(model.pred_obj_scores)
        self.soft_no_obj_ptr = bool(model.soft_no_obj_ptr)
        self.fixed_no_obj_ptr = bool(model.fixed_no_obj_ptr)
        if self.pred_obj_scores:
            self.no_obj_ptr = model.no_obj_ptr

    def run_heads(self, pix_feat, high_res_feats_0, high_res_feats_1, point_coords, point_labels, dense=None):
        """The decoder's four outputs; ``dense`` [N,C,h,w] is the mask prompt's embedding (default: none)."""
        heads = self.heads
        pe = heads.prompt_encoder
        sparse = heads._embed_points(point_coords, point_labels)
        n = sparse.shape[0]
        if dense is None:
            h, w = pe.image_embedding_size
            dense = pe.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(n, -1, h, w)
        masks, iou, tokens, score = heads.mask_decoder.predict_masks(
            image_embeddings=pix_feat,
            image_pe=heads.dense_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=False,
            high_res_features=[high_res_feats_0, high_res_feats_1],
        )
        ptrs = self.obj_ptr_proj(tokens)  # [N, 4, C]
        if self.pred_obj_scores:
            appearing = torch.sigmoid(score) if self.soft_no_obj_ptr else (score > 0).to(ptrs.dtype)
            ptrs = self._blend(ptrs, appearing.unsqueeze(-1))  # [N, 1, 1]
        return masks, iou, score, ptrs

    def _blend(self, ptrs: torch.Tensor, appearing: torch.Tensor) -> torch.Tensor:
        """``_forward_sam_heads``'s no-object pointer: ``appearing`` in [0, 1] broadcast over ``ptrs``."""
        if self.fixed_no_obj_ptr:
            ptrs = appearing * ptrs
        return ptrs + (1 - appearing) * self.no_obj_ptr

    def forward(self, pix_feat, high_res_feats_0, high_res_feats_1, point_coords, point_labels):
        return self.run_heads(pix_feat, high_res_feats_0, high_res_feats_1, point_coords, point_labels)


class MaskPromptGraph(nn.Module):
    """The object pointer of a frame prompted with a mask (``SAM2Base._use_mask_as_output``): ``image_embed``
    [1,C,h,w] (with ``no_mem_embed``), high-res features, ``mask_inputs`` [N,1,S,S] (0/1) -> ``obj_ptr`` [N,C].

    The official code runs the SAM heads on the raw feature with ``mask_downsample(mask)`` as the mask prompt
    and a padding point (no points), takes token 0's pointer (single-mask output) with the no-object pointer
    blended in by the decoder's object score, then blends again by whether the mask has any pixel. The mask's
    logits, IoU and object score are fixed functions of the mask, computed on the host.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.decoder = TrackDecoderGraph(model)
        self.mask_downsample = model.mask_downsample
        c = int(model.hidden_dim)
        self.register_buffer("no_mem_embed", model.no_mem_embed.detach().reshape(1, c, 1, 1).clone(), False)

    def forward(self, image_embed, high_res_feats_0, high_res_feats_1, mask_inputs):
        n = mask_inputs.shape[0]
        pix = (image_embed - self.no_mem_embed).expand(n, -1, -1, -1)
        pe = self.decoder.heads.prompt_encoder
        dense = pe.mask_downscaling(self.mask_downsample(mask_inputs))
        coords = mask_inputs.new_zeros((n, 1, 2))
        labels = -mask_inputs.new_ones((n, 1))
        ptrs = self.decoder.run_heads(pix, high_res_feats_0, high_res_feats_1, coords, labels, dense)[3][:, 0]
        if not self.decoder.pred_obj_scores:
            return ptrs
        appearing = (mask_inputs.flatten(1) > 0).any(dim=1, keepdim=True).to(ptrs.dtype)  # [N, 1]
        return self.decoder._blend(ptrs, appearing)


class MemoryEncoderGraph(nn.Module):
    """``_encode_new_memory`` for N objects (see the module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if model.non_overlap_masks_for_mem_enc:
            raise NotImplementedError("non_overlap_masks_for_mem_enc is not in any official config")
        self.encoder = model.memory_encoder
        self.image_size = int(model.image_size)
        self.scale = float(model.sigmoid_scale_for_mem_enc)
        self.bias = float(model.sigmoid_bias_for_mem_enc)
        c = int(model.hidden_dim)
        self.register_buffer("no_mem_embed", model.no_mem_embed.detach().reshape(1, c, 1, 1).clone(), False)
        self.no_obj_embed_spatial = model.no_obj_embed_spatial

    def forward(self, image_embed, mask_logits, object_score_logits, binarize):
        n = mask_logits.shape[0]
        pix = (image_embed - self.no_mem_embed).expand(n, -1, -1, -1)
        s = self.image_size
        high = F.interpolate(mask_logits, size=(s, s), mode="bilinear", align_corners=False)
        mask = torch.where(binarize.reshape(-1, 1, 1, 1), (high > 0).to(high.dtype), torch.sigmoid(high))
        if self.scale != 1.0:
            mask = mask * self.scale
        if self.bias != 0.0:
            mask = mask + self.bias
        feats = self.encoder(pix, mask, skip_mask_sigmoid=True)["vision_features"]
        if self.no_obj_embed_spatial is not None:
            absent = 1 - (object_score_logits > 0).to(feats.dtype)
            feats = feats + absent[..., None, None] * self.no_obj_embed_spatial[..., None, None]
        return feats
