"""Numpy/PIL preprocessing equals transformers' Qwen2-VL image processor (PIL backend), bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segzero_edge.errors import InputError
from segzero_edge.frame import load_image
from segzero_edge.reasoner import contract as reasoner_contract
from segzero_edge.reasoner.preprocess import PreprocessConfig, preprocess_image, resize_for_model, smart_resize

#: the stated tolerance: exact equality (same PIL resize, same float64 rescale, same float32 normalization)
TOLERANCE = 0.0


def _reference(image: Image.Image, size: int) -> tuple[np.ndarray, np.ndarray]:
    transformers = pytest.importorskip("transformers")
    del transformers
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    ip = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=12845056)
    out = ip(images=[resize_for_model(image, size)], return_tensors="np")
    return out[reasoner_contract.PIXEL_VALUES], out["image_grid_thw"]


@pytest.mark.parametrize(("hw", "size"), [((480, 640), 840), ((300, 200), 112), ((57, 901), 224), ((28, 28), 56)])
def test_equals_transformers_pil_processor(hw, size):
    rng = np.random.default_rng(sum(hw) + size)
    array = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    cfg = PreprocessConfig(input_size=size)
    ours = preprocess_image(array, cfg)
    ref, grid = _reference(Image.fromarray(array), size)
    assert ours.pixel_values.dtype == np.float32 and ours.pixel_values.shape == ref.shape
    assert ours.grid_thw == tuple(grid[0]) == cfg.grid_thw
    assert float(np.abs(ours.pixel_values - ref).max()) <= TOLERANCE
    assert ours.original_size == (hw[1], hw[0])
    assert cfg.num_patches == ref.shape[0] and cfg.patch_dim == ref.shape[1]


def test_seg_zero_geometry():
    cfg = PreprocessConfig()
    assert cfg.input_size == 840 and cfg.grid_thw == (1, 60, 60)
    assert cfg.num_patches == 3600 and cfg.num_image_tokens == 900 and cfg.patch_dim == 1176


def test_image_inputs_path_pil_array_give_the_same_patches(tmp_path):
    rng = np.random.default_rng(1)
    array = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(array).save(path)
    cfg = PreprocessConfig(input_size=56)
    a = preprocess_image(array, cfg).pixel_values
    assert np.array_equal(a, preprocess_image(path, cfg).pixel_values)
    assert np.array_equal(a, preprocess_image(Image.fromarray(array), cfg).pixel_values)
    assert np.array_equal(a, preprocess_image(Image.fromarray(array).convert("RGBA"), cfg).pixel_values)
    gray = array[..., 0]
    assert np.array_equal(
        preprocess_image(gray, cfg).pixel_values, preprocess_image(load_image(gray), cfg).pixel_values
    )


def test_the_reasoner_uses_the_one_image_loader():
    from segzero_edge import frame
    from segzero_edge.reasoner import preprocess

    assert preprocess.load_image is frame.load_image
    assert np.asarray(resize_for_model(np.zeros((20, 30), np.uint8), 56)).shape == (56, 56, 3)


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 5), np.uint8), np.zeros((0, 4, 3), np.uint8), 3.0]
)
def test_bad_images_are_refused(bad):
    with pytest.raises(InputError):
        preprocess_image(bad, PreprocessConfig(input_size=56))


def test_missing_image_file_is_named(tmp_path):
    with pytest.raises(InputError, match=r"nope\.png"):
        load_image(tmp_path / "nope.png")


@pytest.mark.parametrize("size", [100, 0, 27, 3612])
def test_unsupported_image_sizes_are_named(size):
    with pytest.raises(InputError, match=rf"unsupported image size {size}\b"):
        PreprocessConfig(input_size=size)


def test_size_outside_pixel_range_is_refused():
    # 3612 = 129 * 28 is a multiple of 28 but 3612^2 > max_pixels: the processor would shrink it
    assert smart_resize(3612, 3612) != (3612, 3612)
    with pytest.raises(InputError, match="would resize"):
        PreprocessConfig(input_size=3612)


def test_config_round_trip():
    cfg = PreprocessConfig(input_size=224)
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
