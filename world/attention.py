"""Answer-attention supervision for the world reasoner's SFT: one head per text layer is taught to look at
the target object's image tokens while the model writes the answer (the checkpoint stays a plain Qwen2.5-VL),
and optionally at the object each phrase of the think describes (``mention_token_groups``).

Why: with the dense grounding loss (``grounding.py``) the vision tokens hold each object's box, yet the
3-layer text model answered the same mean box for every scene: to copy the named object's box it must
first find that object's tokens, a retrieval the language-model loss alone did not teach it in 6000
steps. This loss supervises the retrieval directly: at every position that predicts an answer token
(``{"bbox": [...], "points_1": ..., "points_2": ...}</answer>``), head ``HEAD`` of each text layer from
``FIRST_LAYER`` on gets the cross-entropy between its attention over the whole sequence and the
target's coverage of the image tokens (the share of each merged token's pixels that the ground-truth
mask covers, normalised). Attention logits need the eager attention kernel (SDPA does not return them);
the saved checkpoint is the same model either way.

Mentions (optional, ``SFTConfig.attention_mentions``): with the answer alone supervised, the heads find
the target when the think names it, but the think itself is written blind: the inventory ("I see 4
shapes: a red star at the top, ...") has to find the *next* shape in reading order, and a 3-layer model
trained on the language-model loss alone named the first shape's colour right 30% of the time (val,
shipped reasoner of 2026-12-02). The dataset records which object every think phrase describes
(``world.scenes.Query.mentions``); the same head is then supervised at every position that predicts a
token of such a phrase, towards that object's coverage: one meaning for the head throughout ("the object
being talked about").

Token layout: the image's ``(S / 28)^2`` merged tokens are contiguous ``<|image_pad|>`` positions in the
prompt, raster order (row-major, ``x`` right, ``y`` down), the same as ``grounding.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .grounding import token_blocks

#: Supervised query head and the first supervised text layer (layer 0 has to gather the target's name
#: from the think into the answer positions before a later layer can look for it).
HEAD = 0
FIRST_LAYER = 1
ANSWER_TAG = "<answer>"


def coverage_target(mask: np.ndarray, input_size: int, token_px: int) -> np.ndarray:
    """``[(S / token_px)^2]`` float32 distribution over the image tokens: the target mask's share of each
    token's pixels, normalised to sum 1 (the token under the mask's centre when the mask covers none)."""
    from PIL import Image

    m = mask > 0
    if m.shape != (input_size, input_size):
        m = (
            np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((input_size, input_size), Image.BILINEAR))
            >= 128
        )
    g = input_size // token_px
    cover = token_blocks(m, token_px).mean(axis=1)
    if cover.sum() == 0:
        ys, xs = np.nonzero(mask > 0)
        if not len(xs):
            raise ValueError("empty target mask")
        h, w = mask.shape
        cover = np.zeros(g * g)
        cover[min(int(ys.mean() / h * g), g - 1) * g + min(int(xs.mean() / w * g), g - 1)] = 1.0
    return (cover / cover.sum()).astype(np.float32)


def answer_token_indices(tokenizer: Any, target_text: str) -> tuple[int, ...]:
    """Indices (into the target's token ids, ``add_special_tokens=False``) of the tokens that start at
    or after ``<answer>``: the answer tag, the JSON, ``</answer>`` and ``<|im_end|>``."""
    start = target_text.index(ANSWER_TAG)
    enc = tokenizer(target_text, add_special_tokens=False, return_offsets_mapping=True)
    return tuple(i for i, (a, _) in enumerate(enc["offset_mapping"]) if a >= start)


def mention_token_groups(
    tokenizer: Any,
    target_text: str,
    think_offset: int,
    mentions: list[tuple[int, int, int]] | tuple,
    answer_object: int,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Supervised tokens of a target text and the object each one is about.

    ``mentions``: ``(start, end, k)`` character spans of the reasoning, which starts at ``think_offset`` in
    ``target_text``. A token overlapping a span is about object ``k``; every token from ``<answer>`` on is
    about ``answer_object``. Returns ``(token indices into the target's ids, object per index)``, in order.
    """
    enc = tokenizer(target_text, add_special_tokens=False, return_offsets_mapping=True)
    start = target_text.index(ANSWER_TAG)
    spans = sorted((think_offset + a, think_offset + b, k) for a, b, k in mentions)
    idx, obj = [], []
    for i, (a, b) in enumerate(enc["offset_mapping"]):
        if a >= start:
            idx.append(i)
            obj.append(answer_object)
            continue
        hit = next((k for s, e, k in spans if a < e and b > s), None)
        if hit is not None:
            idx.append(i)
            obj.append(hit)
    return tuple(idx), tuple(obj)


def attention_loss(
    attentions: tuple[Any, ...],
    input_ids: Any,
    image_token_id: int,
    queries: list[tuple[int, ...]],
    targets: list[np.ndarray],
) -> Any:
    """Mean cross-entropy ``-sum_j p_j log a_j`` over rows, supervised layers and query positions.

    ``attentions``: per text layer ``[B, heads, T, T]`` probabilities (eager kernel). ``queries[b]``:
    sequence positions of row ``b`` whose attention is supervised. ``targets[b]``: ``[n]`` distribution
    over row ``b``'s image tokens in order (the same for every query position), or ``[len(queries[b]), n]``,
    one per query position.
    """
    import torch

    terms = []
    for b, (pos, p) in enumerate(zip(queries, targets)):
        img = (input_ids[b] == image_token_id).nonzero().squeeze(1)
        if img.numel() != p.shape[-1]:
            raise ValueError(f"row {b}: {img.numel()} image tokens but a target over {p.shape[-1]}")
        if p.ndim == 2 and len(p) != len(pos):
            raise ValueError(f"row {b}: {len(pos)} query positions but {len(p)} targets")
        q = torch.tensor(pos, dtype=torch.long)
        tgt = torch.from_numpy(p)
        for layer in attentions[FIRST_LAYER:]:
            a = layer[b, HEAD][q][:, img]  # [len(q), n]
            terms.append(-(tgt * torch.log(a + 1e-9)).sum(dim=1).mean())
    return torch.stack(terms).mean()
