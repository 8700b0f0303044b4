"""M-RoPE position ids equal transformers' get_rope_index (prefill) and its decode positions."""

from __future__ import annotations

import numpy as np
import pytest

from segzero_edge.errors import InputError
from segzero_edge.reasoner.preprocess import decode_position_ids, mrope_position_ids

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

IMG, VS, VE = 50, 51, 52


def _reference(ids: np.ndarray, grids: list[tuple[int, int, int]]):
    from transformers import Qwen2_5_VLConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

    cfg = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [1, 1, 2]},
        ),
        vision_config=dict(depth=1, hidden_size=8, intermediate_size=8, num_heads=1, out_hidden_size=16),
        image_token_id=IMG,
        video_token_id=53,
        vision_start_token_id=VS,
        vision_end_token_id=VE,
    )
    model = Qwen2_5_VLModel(cfg)
    t = torch.from_numpy(ids)[None]
    pos, delta = model.get_rope_index(t, (t == IMG).long(), image_grid_thw=torch.tensor(grids))
    return pos.numpy(), int(delta[0, 0])


def _prompt(grids, rng):
    parts = [rng.integers(0, 40, rng.integers(1, 9))]
    for t, h, w in grids:
        parts += [[VS], [IMG] * (t * h * w // 4), [VE], rng.integers(0, 40, rng.integers(1, 9))]
    return np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])


@pytest.mark.parametrize("grids", [[(1, 60, 60)], [(1, 8, 8)], [(1, 4, 12)], [(1, 12, 6), (1, 4, 4)]])
def test_prefill_positions_equal_get_rope_index(grids):
    ids = _prompt(grids, np.random.default_rng(len(grids) * 7 + grids[0][1]))
    ours, delta = mrope_position_ids(ids, IMG, grids, 2)
    ref, ref_delta = _reference(ids, grids)
    assert ours.shape == (3, 1, ids.size) and ours.dtype == np.int64
    assert np.array_equal(ours, ref)
    assert delta == ref_delta


def test_decode_positions_continue_with_rope_delta():
    ids = _prompt([(1, 8, 12)], np.random.default_rng(3))
    pos, delta = mrope_position_ids(ids, IMG, [(1, 8, 12)])
    nxt = decode_position_ids(ids.size, 3, delta)
    assert nxt.shape == (3, 1, 3)
    assert np.array_equal(nxt[0, 0], np.arange(3) + pos.max() + 1)  # text continues after the last position
    assert (nxt[0] == nxt[1]).all() and (nxt[1] == nxt[2]).all()


def test_mismatched_image_runs_are_refused():
    ids = _prompt([(1, 8, 8)], np.random.default_rng(0))
    with pytest.raises(InputError, match="needs"):
        mrope_position_ids(ids, IMG, [(1, 4, 4)])
    with pytest.raises(InputError, match="images given"):
        mrope_position_ids(ids, IMG, [(1, 8, 8), (1, 8, 8)])
    with pytest.raises(InputError, match="more image-pad runs"):
        mrope_position_ids(ids, IMG, [])
