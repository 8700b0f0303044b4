import numpy as np
import pytest

from segzero_edge.overlay import draw_overlay


def test_overlay_tints_mask_and_draws_prompts():
    rgb = np.zeros((100, 120, 3), np.uint8)
    mask = np.zeros((100, 120), bool)
    mask[20:40, 30:60] = True
    out = np.asarray(draw_overlay(rgb, mask, box=(10, 10, 90, 80), points=[(45, 30)]))
    assert out.shape == (100, 120, 3)
    assert out[25, 35].tolist() == [14, 65, 115]  # 0.45 * (30, 144, 255), rounded
    assert out[5, 5].tolist() == [0, 0, 0]  # untouched background
    assert out[10, 50].tolist() == [30, 144, 255]  # box outline
    assert out[30, 45].tolist() == [255, 215, 0]  # point marker centre


def test_overlay_rejects_mismatched_mask():
    with pytest.raises(ValueError, match="does not match"):
        draw_overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4), bool))
