"""``MemoryBank``: SAM2's video memory for one track, in fixed, preallocated arrays.

The official ``SAM2VideoPredictor`` keeps every frame's output forever (``non_cond_frame_outputs`` grows by
one entry a frame), but its memory attention only ever reads (``_prepare_memory_conditioned_features``,
``memory_temporal_stride_for_eval`` 1, forward tracking):

* spatial memories of the prompt frame and of the frames ``t-1 .. t-(M-1)`` (M = ``num_maskmem``, 7), with
  temporal-encoding row ``M-1`` for the prompt frame and ``t_rel - 1`` for the frame ``t - t_rel``;
* object pointers of the prompt frame (distance ``t - t_prompt``) and of the frames ``t-1 .. t-(K-1)``
  (K = 16), each at distance ``t_diff``, divided by ``t_diff_max``.

So rings of M-1 memories and K-1 pointers, keyed by frame index, hold exactly what the official reads:
for a continuous stream this bank gives the same inputs as the official predictor, in the same order
(prompt first, then oldest to newest memories, newest to oldest pointers), with the unused slots last and
masked out of the attention. Memory and time per frame are therefore constant however long the stream.

Spatial memories are stored as bfloat16 (the official predictor stores ``maskmem_features`` as
``torch.bfloat16`` and reads them back as such), here as the upper 16 bits of float32, rounded to nearest
even like torch's conversion.

Where this bank differs from the official predictor: a new prompt (``reset``) replaces the prompt frame and
clears the rings; the official would keep every earlier prompt frame as conditioning memory
(``max_cond_frames_in_attn = -1``), which grows without bound.
"""

from __future__ import annotations

import numpy as np


def to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> the uint16 bits of the nearest bfloat16 (round half to even, as torch; NaN stays NaN)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    nan = np.isnan(x)
    if nan.any():
        rounded = np.where(nan, (u >> np.uint32(16)) | np.uint32(0x40), rounded)
    return rounded.astype(np.uint16)


def from_bfloat16_bits(bits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The uint16 bits of bfloat16 numbers -> float32 (exact)."""
    wide = bits.astype(np.uint32) << np.uint32(16)
    if out is None:
        return wide.view(np.float32)
    out[...] = wide.view(np.float32)
    return out


class MemoryBank:
    """Fixed-shape memory of one track of N objects (see the module docstring).

    Args:
        num_objects: N.
        mem_shape: ``(D, h, w)`` of one spatial memory.
        ptr_dim: C, the object pointer width.
        num_maskmem: M (slot 0: the prompt frame; 1..M-1: a ring of recent frames).
        max_obj_ptrs: K (slot 0: the prompt frame; 1..K-1: a ring of recent frames).
        t_diff_max: divisor of the pointers' frame distances.
    """

    def __init__(
        self,
        num_objects: int,
        mem_shape: tuple[int, int, int],
        ptr_dim: int,
        *,
        num_maskmem: int,
        max_obj_ptrs: int,
        t_diff_max: int,
    ) -> None:
        self.n, self.m, self.k, self.t_diff_max = num_objects, num_maskmem, max_obj_ptrs, t_diff_max
        self._mem = np.zeros((num_maskmem, num_objects, *mem_shape), dtype=np.uint16)
        self._mem_frame = np.full(num_maskmem, -1, dtype=np.int64)
        self._ptr = np.zeros((max_obj_ptrs, num_objects, ptr_dim), dtype=np.float32)
        self._ptr_frame = np.full(max_obj_ptrs, -1, dtype=np.int64)
        # The feeds, allocated once and refilled each frame.
        self._memory = np.zeros((num_objects, num_maskmem, *mem_shape), dtype=np.float32)
        self._tpos = np.zeros(num_maskmem, dtype=np.int64)
        self._valid = np.zeros(num_maskmem, dtype=bool)
        self._ptrs = np.zeros((num_objects, max_obj_ptrs, ptr_dim), dtype=np.float32)
        self._ptr_tpos = np.zeros(max_obj_ptrs, dtype=np.float32)
        self._ptr_valid = np.zeros(max_obj_ptrs, dtype=bool)

    @property
    def prompt_frame(self) -> int:
        """Frame index of the prompt (conditioning) frame, -1 before ``reset``."""
        return int(self._mem_frame[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the bank and its feed buffers (constant for the bank's life)."""
        arrays = (self._mem, self._ptr, self._memory, self._ptrs)
        return int(sum(a.nbytes for a in arrays))

    def reset(self, frame: int, maskmem: np.ndarray, obj_ptr: np.ndarray) -> None:
        """Start over from a prompt frame: ``maskmem`` [N,D,h,w] float32, ``obj_ptr`` [N,C]."""
        self._mem_frame[:] = -1
        self._ptr_frame[:] = -1
        self._mem[0] = to_bfloat16_bits(maskmem)
        self._mem_frame[0] = frame
        self._ptr[0] = obj_ptr
        self._ptr_frame[0] = frame

    def add(self, frame: int, maskmem: np.ndarray, obj_ptr: np.ndarray) -> None:
        """Remember a tracked frame (after the prompt frame, frame indices increasing)."""
        if frame <= self.prompt_frame:
            raise ValueError(f"frame {frame} is not after the prompt frame {self.prompt_frame}")
        slot = 1 + frame % (self.m - 1) if self.m > 1 else None
        if slot is not None:
            self._mem[slot] = to_bfloat16_bits(maskmem)
            self._mem_frame[slot] = frame
        if self.k > 1:
            pslot = 1 + frame % (self.k - 1)
            self._ptr[pslot] = obj_ptr
            self._ptr_frame[pslot] = frame

    def feeds(self, frame: int) -> tuple[np.ndarray, ...]:
        """Inputs of the memory attention for ``frame``: ``memory_features`` [N,M,D,h,w], ``memory_tpos`` [M],
        ``memory_valid`` [M], ``obj_ptrs`` [N,K,C], ``ptr_tpos`` [K], ``ptr_valid`` [K]."""
        prompt = self.prompt_frame
        if prompt < 0:
            raise ValueError("the memory bank has no prompt frame yet")
        m, k = self.m, self.k
        # Spatial: the prompt frame (row M-1), then t_pos = 1..M-1 i.e. frames t-(M-1) .. t-1.
        order = [(0, m - 1)]
        for t_pos in range(1, m):
            prev = frame - (m - t_pos)
            slot = 1 + prev % (m - 1)
            if prev > prompt and self._mem_frame[slot] == prev:
                order.append((slot, m - t_pos - 1))
        self._valid[:] = False
        self._tpos[:] = 0
        for i, (slot, row) in enumerate(order):
            from_bfloat16_bits(self._mem[slot], out=self._memory[:, i])
            self._tpos[i] = row
            self._valid[i] = True
        self._memory[:, len(order) :] = 0.0
        # Pointers: the prompt frame (distance t - prompt), then t_diff = 1..K-1, newest first.
        dists = [(0, frame - prompt)]
        for t_diff in range(1, k):
            t = frame - t_diff
            if t <= prompt:
                break
            slot = 1 + t % (k - 1)
            if self._ptr_frame[slot] == t:
                dists.append((slot, t_diff))
        self._ptr_valid[:] = False
        self._ptr_tpos[:] = 0.0
        for i, (slot, dist) in enumerate(dists):
            self._ptrs[:, i] = self._ptr[slot]
            self._ptr_tpos[i] = np.float32(dist) / np.float32(self.t_diff_max)
            self._ptr_valid[i] = True
        self._ptrs[:, len(dists) :] = 0.0
        return self._memory, self._tpos, self._valid, self._ptrs, self._ptr_tpos, self._ptr_valid
