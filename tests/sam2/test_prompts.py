"""Prompt conversion: box corners first (labels 2, 3), per-axis scaling, grouping, input errors."""

from __future__ import annotations

import numpy as np
import pytest

from segzero_edge.errors import InputError
from segzero_edge.sam2 import contract as sam2_contract
from segzero_edge.sam2.host import build_prompts

KW = dict(image_wh=(640, 480), image_size=1024, low_res_size=256, max_objects=16)


def test_box_and_points_layout_and_scaling():
    n, batches = build_prompts(box=[10, 20, 300, 400], points=[[50, 60], [70, 80]], labels=[1, 0], **KW)
    assert n == 1 and len(batches) == 1
    b = batches[0]
    assert b.point_labels.tolist() == [[2, 3, 1, 0]]
    # SAM2Transforms.transform_coords: x / W * S, y / H * S (each axis on its own).
    expected = np.array([[10, 20], [300, 400], [50, 60], [70, 80]], np.float32) / np.array([640, 480], np.float32)
    assert np.array_equal(b.point_coords[0], expected * np.float32(1024))
    assert b.has_mask_input.tolist() == [0.0] and b.mask_input.shape == (1, 1, 256, 256)


def test_official_coordinate_transform_bit_for_bit():
    torch = pytest.importorskip("torch")
    pts = np.random.default_rng(0).uniform(0, 640, (5, 2)).astype(np.float32)
    ref = torch.from_numpy(pts).clone()
    ref[..., 0] = ref[..., 0] / 640
    ref[..., 1] = ref[..., 1] / 480
    ref = ref * 1024
    _, (b,) = build_prompts(points=pts, **KW)
    assert np.array_equal(b.point_coords[0], ref.numpy())
    assert b.point_labels.tolist() == [[1] * 5]


def test_objects_grouped_by_prompt_length_and_chunked():
    boxes = np.tile(np.array([[0, 0, 100, 100]], np.float32), (5, 1))
    points = [np.zeros((k, 2), np.float32) for k in (1, 2, 1, 1, 2)]
    n, batches = build_prompts(box=boxes, points=points, **{**KW, "max_objects": 2})
    assert n == 5
    got = [(b.indices.tolist(), b.point_coords.shape[1]) for b in batches]
    assert got == [([0, 2], 3), ([3], 3), ([1, 4], 4)]


def test_mask_input_shapes():
    prev = np.ones((2, 256, 256), np.float32)
    _, (b,) = build_prompts(box=[[0, 0, 5, 5], [1, 1, 6, 6]], mask_input=prev, **KW)
    assert b.has_mask_input.tolist() == [1.0, 1.0] and float(b.mask_input.sum()) == 2 * 256 * 256
    with pytest.raises(InputError, match=sam2_contract.MASK_INPUT):
        build_prompts(box=[0, 0, 5, 5], mask_input=np.ones((64, 64)), **KW)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "give a box"),
        ({"box": [1, 2, 3]}, "boxes must be"),
        ({"box": [0, 0, np.nan, 5]}, "NaN"),
        ({"points": [[1, 2, 3]]}, r"\(P, 2\)"),
        ({"points": [[1, 2], [3, 4]], "labels": [1]}, "one label per point"),
        ({"points": [[1, 2]], "labels": [7]}, "labels must be"),
        ({"box": [[0, 0, 5, 5], [1, 1, 6, 6]], "points": [[1, 2]]}, "2 boxes but points for 1 object"),
        ({"box": [0, 0, 5, 5], "points": np.zeros((3, 1, 2))}, "1 boxes but points for 3"),
    ],
)
def test_bad_prompts_raise_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        build_prompts(**kwargs, **KW)


def test_empty_box_list_gives_no_calls():
    assert build_prompts(box=np.zeros((0, 4)), **KW) == (0, [])
