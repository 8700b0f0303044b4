"""LENS's forward in torch, written from the facts in reference/other_families.md §1 (not from LENS's code).

* ``LensContext``: the context module, query hidden states ``[B, Q, H]`` -> one SAM2 prompt token
  ``[B, 1, D]``: ``connector`` (learned ``pos_embed`` added, then pre-norm ViT blocks: LayerNorm eps 1e-6,
  fused-qkv self-attention without mask or RoPE, MLP with quick-GELU), ``conv_1d`` (Conv1d with kernel Q over
  the token axis: Q tokens -> 1) and ``proj_to_sam`` (Linear, exact GELU, Linear). Key names are the
  checkpoint's (``connector.blocks.0.attn.qkv.weight`` ...).
* ``read_lens_parts``: the LENS tensors of a checkpoint (``learnable_query``, the context module, ``sam.*``),
  checked key by key: a missing or mis-shaped tensor is a ``CheckpointError`` that names it.
* ``load_lens_sam2``: the official ``SAM2Base`` with the checkpoint's ``sam.*`` weights (its memory modules,
  which LENS deletes, are the only keys allowed to be missing).
* ``image_encoder_digest`` / ``compare_image_encoder``: is the image encoder stock SAM2?

The whole request (``LensReference``) is assembled from these in ``export/lens_export/reference.py``, next to
the checkpoint reader it needs. Tests build tiny checkpoints in LENS's published layout (``builders/lens.py``).
torch and sam2 are imported lazily.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CheckpointError

log = logging.getLogger(__name__)

#: LENS's connector (every release): 16 attention heads, 4 ViT blocks, MLP ratio 4.
CONNECTOR_HEADS = 16
CONNECTOR_BLOCKS = 4
#: SAM2 modules LENS deletes from its model: the only ``sam.*`` keys a checkpoint may lack.
SAM2_MEMORY_PREFIXES = ("memory_attention.", "memory_encoder.", "maskmem_tpos_enc")
#: The SAM2 modules LENS fine-tunes (everything else is stock SAM2 2.0 Hiera-L).
SAM2_TUNED_PREFIXES = ("sam_prompt_encoder.", "sam_mask_decoder.")


def _nn():
    import torch
    from torch import nn

    return torch, nn


def _block_keys(i: int, hidden: int) -> dict[str, tuple[int, ...]]:
    p = f"connector.blocks.{i}."
    return {
        p + "norm1.weight": (hidden,),
        p + "norm1.bias": (hidden,),
        p + "attn.qkv.weight": (3 * hidden, hidden),
        p + "attn.qkv.bias": (3 * hidden,),
        p + "attn.proj.weight": (hidden, hidden),
        p + "attn.proj.bias": (hidden,),
        p + "norm2.weight": (hidden,),
        p + "norm2.bias": (hidden,),
        p + "mlp.fc1.weight": (4 * hidden, hidden),
        p + "mlp.fc1.bias": (4 * hidden,),
        p + "mlp.fc2.weight": (hidden, 4 * hidden),
        p + "mlp.fc2.bias": (hidden,),
    }


def context_keys(num_queries: int, hidden: int, prompt_dim: int, blocks: int) -> dict[str, tuple[int, ...]]:
    """Every tensor of LENS's context module with its shape (checkpoint names, ``learnable_query`` included)."""
    keys = {"learnable_query": (1, num_queries, hidden), "connector.pos_embed": (1, num_queries, hidden)}
    for i in range(blocks):
        keys.update(_block_keys(i, hidden))
    keys.update(
        {
            "conv_1d.weight": (hidden, hidden, num_queries),
            "conv_1d.bias": (hidden,),
            "proj_to_sam.0.weight": (hidden, hidden),
            "proj_to_sam.0.bias": (hidden,),
            "proj_to_sam.2.weight": (prompt_dim, hidden),
            "proj_to_sam.2.bias": (prompt_dim,),
        }
    )
    return keys


def make_context_module(
    num_queries: int,
    hidden: int,
    prompt_dim: int = 256,
    *,
    heads: int = CONNECTOR_HEADS,
    blocks: int = CONNECTOR_BLOCKS,
):
    """A ``LensContext`` (torch module, default init) for these shapes."""
    torch, nn = _nn()
    import torch.nn.functional as F

    class _Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(hidden, 3 * hidden)
            self.proj = nn.Linear(hidden, hidden)

        def forward(self, x):
            b, n, _ = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4).unbind(0)
            y = F.scaled_dot_product_attention(q, k, v)  # [b, heads, n, hd], no mask
            return self.proj(y.transpose(1, 2).reshape(b, n, hidden))

    class _Mlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(hidden, 4 * hidden)
            self.fc2 = nn.Linear(4 * hidden, hidden)

        def forward(self, x):
            h = self.fc1(x)
            return self.fc2(h * torch.sigmoid(1.702 * h))  # quick_gelu

    class _Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm1 = nn.LayerNorm(hidden, eps=1e-6)
            self.attn = _Attention()
            self.norm2 = nn.LayerNorm(hidden, eps=1e-6)
            self.mlp = _Mlp()

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class _Connector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pos_embed = nn.Parameter(torch.zeros(1, num_queries, hidden))
            self.blocks = nn.ModuleList([_Block() for _ in range(blocks)])

        def forward(self, x):
            x = x + self.pos_embed
            for block in self.blocks:
                x = block(x)
            return x

    class LensContext(nn.Module):
        """``[B, Q, H]`` post-norm hidden states of the queries -> ``[B, 1, D]`` SAM2 prompt token."""

        def __init__(self) -> None:
            super().__init__()
            self.connector = _Connector()
            self.conv_1d = nn.Conv1d(hidden, hidden, kernel_size=num_queries)
            self.proj_to_sam = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, prompt_dim))

        def forward(self, query_hidden):
            x = self.connector(query_hidden)  # [B, Q, H]
            x = self.conv_1d(x.transpose(1, 2)).transpose(1, 2)  # [B, 1, H]
            return self.proj_to_sam(x)  # [B, 1, D]

    return LensContext()


@dataclass(frozen=True)
class LensParts:
    """The LENS tensors of a checkpoint, checked.

    Attributes:
        queries: ``[Q, H]`` float32, the learned queries.
        context: the context module's state dict (checkpoint names without ``learnable_query``), torch tensors.
        sam: the SAM2 state dict (``sam.`` removed), torch tensors.
        num_queries, hidden, prompt_dim, blocks: the shapes read from the tensors.
    """

    queries: np.ndarray
    context: dict[str, Any]
    sam: dict[str, Any]
    num_queries: int
    hidden: int
    prompt_dim: int
    blocks: int


def read_lens_parts(reader, hidden: int) -> LensParts:
    """The LENS tensors of a checkpoint (``export.reasoner_export.checkpoint.WeightReader``, which names them
    ``lens.*``), checked against the shapes LENS's modules have.

    Raises:
        CheckpointError: a missing or mis-shaped tensor (the message names it).
    """
    import torch

    names = {n[len("lens.") :] for n in reader.names() if n.startswith("lens.")}
    if "learnable_query" not in names:
        raise CheckpointError(
            "the checkpoint has no 'learnable_query': it is not a LENS checkpoint",
            hint="pass a LENS checkpoint directory (OuyBin/LENS, LENS_ReasonSeg_FT, LENS_ReasonSeg_CoT)",
        )
    lq = reader.get("lens.learnable_query")
    if lq.ndim != 3 or lq.shape[0] != 1 or lq.shape[2] != hidden:
        raise CheckpointError(f"'learnable_query' has shape {list(lq.shape)}, expected [1, Q, {hidden}]")
    q = int(lq.shape[1])
    blocks = len({n.split(".")[2] for n in names if n.startswith("connector.blocks.")})
    d = reader.get("lens.proj_to_sam.2.weight").shape[0] if "proj_to_sam.2.weight" in names else 256
    wanted = context_keys(q, hidden, d, blocks or CONNECTOR_BLOCKS)
    context = {}
    for key, shape in wanted.items():
        if key not in names:
            raise CheckpointError(
                f"the LENS checkpoint has no {key!r}", hint="the download is incomplete or it is not a LENS checkpoint"
            )
        value = reader.get("lens." + key)
        if tuple(value.shape) != shape:
            raise CheckpointError(f"LENS tensor {key!r} has shape {list(value.shape)}, expected {list(shape)}")
        if key != "learnable_query":
            context[key] = torch.from_numpy(value)
    sam = {n[len("sam.") :]: torch.from_numpy(reader.get("lens." + n)) for n in sorted(names) if n.startswith("sam.")}
    if not sam:
        raise CheckpointError("the LENS checkpoint has no SAM2 weights ('sam.*')", hint="the download is incomplete")
    return LensParts(lq[0].astype(np.float32), context, sam, q, hidden, int(d), blocks or CONNECTOR_BLOCKS)


def load_context_module(parts: LensParts, heads: int = CONNECTOR_HEADS):
    """``make_context_module`` for ``parts``' shapes, with its weights, in eval mode (float32)."""
    if parts.hidden % heads:
        raise CheckpointError(f"hidden size {parts.hidden} is not divisible by the connector's {heads} heads")
    module = make_context_module(parts.num_queries, parts.hidden, parts.prompt_dim, heads=heads, blocks=parts.blocks)
    module.load_state_dict(parts.context, strict=True)
    return module.float().eval()


def load_lens_sam2(sam_state: dict[str, Any], config: str | None = None) -> tuple[Any, str]:
    """The official ``SAM2Base`` (``apply_postprocessing=True``) with LENS's ``sam.*`` weights, and its config.

    Args:
        sam_state: ``LensParts.sam``.
        config: an official config name or file; default: guessed from the trunk's shapes (LENS: ``sam2_hiera_l``).

    Raises:
        CheckpointError: unknown trunk, or a key other than the memory modules missing, unexpected or mis-shaped
            (the message names the first ones).
    """
    from .sam2_model import build_sam2_model, guess_config

    config = config or guess_config(sam_state)
    if config is None:
        raise CheckpointError(
            "cannot tell which SAM2 the LENS checkpoint's 'sam.*' weights belong to",
            hint="pass --sam2-config (LENS uses sam2_hiera_l)",
        )
    from ..sam2.configs import resolve_sam2_config

    config = resolve_sam2_config(config)
    model = build_sam2_model(config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sam_state and not k.startswith(SAM2_MEMORY_PREFIXES)]
    unexpected = [k for k in sam_state if k not in expected]
    reshaped = [k for k in sam_state if k in expected and tuple(sam_state[k].shape) != tuple(expected[k].shape)]
    for what, keys in (("is missing", missing), ("is not part of", unexpected), ("has another shape in", reshaped)):
        if keys:
            detail = (
                f" ({list(sam_state[keys[0]].shape)} vs {list(expected[keys[0]].shape)})" if keys is reshaped else ""
            )
            raise CheckpointError(
                f"LENS SAM2 weight 'sam.{keys[0]}'{detail} {what} {config} ({len(keys)} such keys)",
                hint="pass the --sam2-config the checkpoint was trained with (LENS: sam2_hiera_l)",
            )
    model.load_state_dict(sam_state, strict=False)
    return model.eval(), config


def image_encoder_digest(sam_state: dict[str, Any]) -> str:
    """sha256 over the image encoder's tensors (names and float32 bytes, sorted by name): equal digests mean
    equal weights whatever file format or dtype held them."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(k for k in sam_state if k.startswith("image_encoder.")):
        h.update(name.encode())
        h.update(np.ascontiguousarray(sam_state[name].float().numpy()).tobytes())
    return h.hexdigest()


def compare_image_encoder(sam_state: dict[str, Any], stock_state: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's image encoder against a stock SAM2 state dict: digests, tensors that differ, max |diff|."""
    differ, max_diff, missing = [], 0.0, []
    for name in sorted(k for k in stock_state if k.startswith("image_encoder.")):
        if name not in sam_state:
            missing.append(name)
            continue
        a, b = sam_state[name].float(), stock_state[name].float()
        if a.shape != b.shape:
            differ.append(name)
            max_diff = float("inf")
            continue
        d = float((a - b).abs().max()) if a.numel() else 0.0
        if d > 0:
            differ.append(name)
            max_diff = max(max_diff, d)
    digest, stock = image_encoder_digest(sam_state), image_encoder_digest(stock_state)
    return {
        "sha256": digest,
        "stock_sha256": stock,
        "stock": digest == stock and not missing,
        "tensors_differing": len(differ) + len(missing),
        "first_differing": (differ + missing)[:5],
        "max_abs_diff": max_diff,
    }
