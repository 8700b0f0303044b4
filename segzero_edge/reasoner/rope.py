"""Qwen2.5-VL's 3-row M-RoPE position ids, in numpy.

Each token gets three positions (temporal, height, width). Text tokens have the same value in all three
rows, counting up by one. The ``t*h*w`` tokens of an image (after the 2x2 merge) start at the current
position ``p``: temporal ``p + t_index``, height ``p + row``, width ``p + column``; the text after the image
continues at ``p + max(h, w)`` (in merged units). Equal to ``transformers``'
``Qwen2_5_VLModel.get_rope_index`` for still images (a test compares them).

During KV-cache decoding the token at absolute index ``i`` of the sequence gets ``i + rope_delta`` in all
three rows, with ``rope_delta = max(prefill positions) + 1 - prefill length`` (negative for images larger
than one row).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from ..errors import InputError


def mrope_position_ids(
    input_ids: Sequence[int] | np.ndarray,
    image_token_id: int,
    image_grids_thw: Sequence[tuple[int, int, int]],
    spatial_merge_size: int = 2,
) -> tuple[np.ndarray, int]:
    """Position ids of a prompt.

    Args:
        input_ids: ``(seq,)`` token ids of one prompt (batch of one), image pads already expanded.
        image_token_id: id of ``<|image_pad|>``.
        image_grids_thw: ``(t, h, w)`` in patches (before merging) for each image, in prompt order.
        spatial_merge_size: the vision tower's merge (2).

    Returns:
        ``(position_ids, rope_delta)``: ``position_ids`` is ``(3, 1, seq)`` int64, ``rope_delta`` an int.

    Raises:
        InputError: the number of image-pad runs or their lengths do not match ``image_grids_thw``.
    """
    ids = np.asarray(input_ids, dtype=np.int64).reshape(-1)
    is_image = ids == image_token_id
    # runs of equal token type: (is_image, start, end)
    change = np.flatnonzero(np.diff(is_image.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [ids.size]]).astype(np.int64)
    grids = list(image_grids_thw)
    pieces: list[np.ndarray] = []
    current = 0
    image_index = 0
    for start, end in itertools.pairwise(bounds):
        if end <= start:
            continue
        if not is_image[start]:
            n = int(end - start)
            pieces.append(np.broadcast_to(np.arange(n, dtype=np.int64) + current, (3, n)))
            current += n
            continue
        if image_index >= len(grids):
            raise InputError(f"the prompt has more image-pad runs than images ({len(grids)})")
        t, h, w = (int(v) for v in grids[image_index])
        image_index += 1
        lh, lw = h // spatial_merge_size, w // spatial_merge_size
        if (end - start) != t * lh * lw:
            raise InputError(
                f"image {image_index} has {end - start} pad tokens, its grid {t}x{h}x{w} needs {t * lh * lw}"
            )
        tt, hh, ww = np.meshgrid(np.arange(t), np.arange(lh), np.arange(lw), indexing="ij")
        pieces.append(np.stack([tt.reshape(-1), hh.reshape(-1), ww.reshape(-1)]).astype(np.int64) + current)
        current += max(h, w) // spatial_merge_size
    if image_index != len(grids):
        raise InputError(f"{len(grids)} images given but the prompt has {image_index} image-pad runs")
    positions = np.concatenate(pieces, axis=1) if pieces else np.zeros((3, 0), np.int64)
    rope_delta = int(positions.max()) + 1 - ids.size if ids.size else 0
    return np.ascontiguousarray(positions[:, None, :]), rope_delta


def decode_position_ids(start: int, count: int, rope_delta: int) -> np.ndarray:
    """Position ids ``(3, 1, count)`` int64 of ``count`` new tokens at absolute indices ``start ...``."""
    row = np.arange(start, start + count, dtype=np.int64) + rope_delta
    return np.ascontiguousarray(np.broadcast_to(row, (3, 1, count)))
