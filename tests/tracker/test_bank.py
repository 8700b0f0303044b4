"""The fixed memory bank against the official predictor's memory selection, and its bf16 storage."""

from __future__ import annotations

import numpy as np
import pytest

from segzero_edge.tracker.bank import MemoryBank, from_bfloat16_bits, to_bfloat16_bits


def official_selection(frame: int, prompt: int, tracked: set[int], num_maskmem: int = 7, max_ptrs: int = 16):
    """What ``SAM2Base._prepare_memory_conditioned_features`` reads on ``frame`` (stride 1, forward, one
    conditioning frame, every frame stored in ``non_cond_frame_outputs``): spatial (frame, tpos row) in
    order, and pointers (frame, distance) in order. Written from the official loops, dictionary-based."""
    spatial = [(prompt, num_maskmem - 0 - 1)]
    for t_pos in range(1, num_maskmem):
        t_rel = num_maskmem - t_pos
        prev = frame - 1 if t_rel == 1 else ((frame - 2) // 1) * 1 - (t_rel - 2) * 1
        if prev in tracked:
            spatial.append((prev, num_maskmem - t_pos - 1))
    pointers = [(prompt, frame - prompt)] if prompt <= frame else []
    for t_diff in range(1, max_ptrs):
        t = frame - t_diff
        if t < 0:
            break
        if t in tracked:
            pointers.append((t, t_diff))
    return spatial, pointers


def _filled(n, value, shape):
    return np.full((n, *shape), float(value), dtype=np.float32)


@pytest.mark.parametrize("prompt", [0, 5])
def test_bank_reads_what_the_official_predictor_reads(prompt):
    m, k, n = 7, 16, 2
    bank = MemoryBank(n, (4, 3, 3), 8, num_maskmem=m, max_obj_ptrs=k, t_diff_max=15)
    bank.reset(prompt, _filled(n, prompt, (4, 3, 3)), _filled(n, prompt, (8,)))
    tracked: set[int] = set()
    for frame in range(prompt + 1, prompt + 60):
        memory, tpos, valid, ptrs, ptr_tpos, ptr_valid = bank.feeds(frame)
        want_spatial, want_ptrs = official_selection(frame, prompt, tracked, m, k)
        got_spatial = [(int(memory[0, i, 0, 0, 0]), int(tpos[i])) for i in range(m) if valid[i]]
        got_ptrs = [(int(ptrs[0, i, 0]), round(float(ptr_tpos[i]) * 15)) for i in range(k) if ptr_valid[i]]
        assert got_spatial == want_spatial, frame
        assert got_ptrs == want_ptrs, frame
        assert not memory[:, ~valid].any() and not ptrs[:, ~ptr_valid].any()  # padding is zero
        assert valid[: len(want_spatial)].all() and not valid[len(want_spatial) :].any()  # packed first
        bank.add(frame, _filled(n, frame, (4, 3, 3)), _filled(n, frame, (8,)))
        tracked.add(frame)


def test_bank_memory_is_constant_over_ten_thousand_frames():
    bank = MemoryBank(3, (64, 16, 16), 256, num_maskmem=7, max_obj_ptrs=16, t_diff_max=15)
    rng = np.random.default_rng(0)
    bank.reset(0, rng.standard_normal((3, 64, 16, 16), dtype=np.float32), np.zeros((3, 256), np.float32))
    size = bank.nbytes
    arrays = [id(a) for a in bank.feeds(1)]
    mem = rng.standard_normal((3, 64, 16, 16), dtype=np.float32)
    for frame in range(1, 10_001):
        feeds = bank.feeds(frame)
        bank.add(frame, mem, np.full((3, 256), frame, np.float32))
    assert bank.nbytes == size
    assert [id(a) for a in feeds] == arrays  # the same buffers, refilled
    assert sorted({int(v) for v in bank.feeds(10_001)[3][0, 1:, 0]}) == list(range(9986, 10_001))


def test_bfloat16_rounding_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [
            rng.standard_normal(100_000).astype(np.float32) * 10,
            np.array([0.0, -0.0, 1e-40, -1e-40, 3.4e38, np.inf, -np.inf, 1.0 + 2**-8, 1.0 + 3 * 2**-8], np.float32),
        ]
    )
    ours = from_bfloat16_bits(to_bfloat16_bits(x))
    ref = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(ours, ref)
    assert np.isnan(from_bfloat16_bits(to_bfloat16_bits(np.array([np.nan], np.float32))))[0]


def test_add_before_the_prompt_frame_is_refused():
    bank = MemoryBank(1, (1, 1, 1), 2, num_maskmem=7, max_obj_ptrs=16, t_diff_max=15)
    with pytest.raises(ValueError, match="no prompt frame"):
        bank.feeds(3)
    bank.reset(4, np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="not after the prompt frame"):
        bank.add(4, np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 2), np.float32))
