import numpy as np
import pytest

from segzero_edge.overlay import PALETTE, contour, contrast_color, draw_overlay


def _scene():
    rgb = np.zeros((100, 120, 3), np.uint8)
    rgb[20:40, 30:60] = (30, 90, 230)  # a blue object
    mask = np.zeros((100, 120), bool)
    mask[20:40, 30:60] = True
    return rgb, mask


def test_the_tint_contrasts_with_the_object_and_the_contour_is_drawn():
    rgb, mask = _scene()
    color = contrast_color(rgb, mask)
    assert color in PALETTE and color != (30, 144, 255)  # never blue on a blue object
    out = np.asarray(draw_overlay(rgb, mask, box=(10, 10, 90, 80), points=[(45, 30)]))
    assert out.shape == (100, 120, 3)
    assert out[20, 45].tolist() == list(color)  # the contour, opaque
    inside = out[30, 40].astype(int)
    expected = np.round(0.55 * np.array([30, 90, 230]) + 0.45 * np.array(color)).astype(int)
    assert np.abs(inside - expected).max() <= 1  # tinted (float32 blend), not replaced
    assert out[5, 5].tolist() == [0, 0, 0]  # untouched background
    assert out[10, 50].tolist() == list(color)  # box outline in the same colour
    assert out[30, 45].tolist() == [255, 255, 255]  # point marker centre
    # the marked pixels differ visibly from the object's own colour
    assert np.abs(out[20, 45].astype(int) - [30, 90, 230]).sum() > 200


def test_contour_is_a_band_inside_the_mask():
    _, mask = _scene()
    band = contour(mask, 2)
    assert band.any() and not (band & ~mask).any()
    assert band[20, 45] and band[21, 45] and not band[22, 45] and not band[30, 45]


def test_empty_mask_and_explicit_colour():
    rgb, mask = _scene()
    out = np.asarray(draw_overlay(rgb, np.zeros_like(mask), color=(255, 0, 255)))
    assert np.array_equal(out, rgb)
    assert np.asarray(draw_overlay(rgb, mask, color=(255, 0, 255)))[20, 45].tolist() == [255, 0, 255]


def test_overlay_rejects_mismatched_mask():
    with pytest.raises(ValueError, match="does not match"):
        draw_overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4), bool))
