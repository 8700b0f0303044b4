"""DAVIS J and F: hand-checked cases, and the disk dilation against scipy's."""

from __future__ import annotations

import numpy as np
import pytest

from segzero_edge.evaluation.video import (
    boundary_map,
    clip_scores,
    contour_accuracy,
    dilate_disk,
    region_similarity,
)


def _square(x, y, s, size=100):
    m = np.zeros((size, size), bool)
    m[y : y + s, x : x + s] = True
    return m


def test_region_similarity_is_iou_and_one_for_two_empty_masks():
    a, b = _square(10, 10, 20), _square(20, 10, 20)
    assert region_similarity(a, b) == pytest.approx(200 / 600)
    assert region_similarity(a, a) == 1.0
    empty = np.zeros_like(a)
    assert region_similarity(empty, empty) == 1.0 and region_similarity(a, empty) == 0.0


def test_boundary_map_marks_the_edges_davis_marks():
    b = boundary_map(_square(10, 10, 5, size=20))
    # seg2bmap marks a pixel that differs from its east, south or south-east neighbour: the object's last
    # row and column, and the background pixels just above-left of its first row and column.
    assert b[14, 10:15].all() and b[10:15, 14].all() and b[9, 9] and b[9, 10:14].all() and b[10:14, 9].all()
    assert not b[11:14, 11:14].any()


def test_contour_accuracy_tolerates_shifts_within_the_disk():
    a = _square(20, 20, 40)
    diag_radius = int(np.ceil(0.008 * np.hypot(100, 100)))  # 2 px
    assert contour_accuracy(a, a) == 1.0
    assert contour_accuracy(a, _square(20 + diag_radius, 20, 40)) == 1.0
    assert contour_accuracy(a, _square(30, 20, 40)) < 0.6
    empty = np.zeros_like(a)
    assert contour_accuracy(empty, empty) == 1.0 and contour_accuracy(a, empty) == 0.0 == contour_accuracy(empty, a)


@pytest.mark.parametrize("radius", [1, 2, 3, 5])
def test_disk_dilation_equals_scipy(radius):
    scipy = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(radius)
    mask = rng.random((40, 50)) > 0.97
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    ref = scipy.binary_dilation(mask, structure=x * x + y * y <= radius * radius)
    np.testing.assert_array_equal(dilate_disk(mask, radius), ref)


def test_clip_scores_average_over_frames():
    a = _square(20, 20, 40)
    s = clip_scores([a, a, np.zeros_like(a)], [a, np.zeros_like(a), np.zeros_like(a)])
    assert s["frames"] == 3 and s["J"] == pytest.approx(2 / 3) and s["F"] == pytest.approx(2 / 3)
    assert s["J&F"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        clip_scores([a], [a, a])
