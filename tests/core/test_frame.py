"""Image inputs of every accepted kind, and clear errors for the rest."""

import numpy as np
import pytest
from PIL import Image

from segzero_edge.errors import InputError
from segzero_edge.frame import Frame, frame_key, load_image

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def test_array_rgb_is_returned_unchanged():
    out = load_image(RGB)
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, RGB)


def test_bgr_frames_are_flipped():
    np.testing.assert_array_equal(load_image(RGB[:, :, ::-1].copy(), color="bgr"), RGB)


def test_gray_and_rgba_arrays():
    gray = RGB[:, :, 0]
    np.testing.assert_array_equal(load_image(gray), np.stack([gray] * 3, axis=2))
    np.testing.assert_array_equal(load_image(gray[:, :, None]), np.stack([gray] * 3, axis=2))
    rgba = np.concatenate([RGB, np.full((5, 7, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(load_image(rgba), RGB)


def test_pil_modes_and_paths(tmp_path):
    np.testing.assert_array_equal(load_image(Image.fromarray(RGB)), RGB)
    np.testing.assert_array_equal(load_image(Image.fromarray(RGB).convert("RGBA")), RGB)
    assert load_image(Image.fromarray(RGB).convert("L")).shape == (5, 7, 3)
    path = tmp_path / "x.png"
    Image.fromarray(RGB).save(path)
    np.testing.assert_array_equal(load_image(path), RGB)
    np.testing.assert_array_equal(load_image(str(path)), RGB)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (RGB.astype(np.float32), "must be uint8"),
        (np.zeros((0, 4, 3), np.uint8), "zero size"),
        (np.zeros((4, 4, 2), np.uint8), "HxW, HxWx3 or HxWx4"),
        (np.zeros((2, 4, 4, 3), np.uint8), "HxW, HxWx3 or HxWx4"),
        ([[1, 2], [3, 4]], "unsupported image type list"),
        (None, "unsupported image type"),
    ],
)
def test_bad_inputs(image, message):
    with pytest.raises(InputError, match=message):
        load_image(image)


def test_bad_files_and_color(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(InputError, match="color"):
        load_image(RGB, color="hsv")  # type: ignore[arg-type]


def test_frame_key_depends_on_content_and_shape():
    assert frame_key(RGB) == frame_key(RGB.copy())
    other = RGB.copy()
    other[0, 0, 0] ^= 1
    assert frame_key(other) != frame_key(RGB)
    assert frame_key(np.zeros((2, 6, 3), np.uint8)) != frame_key(np.zeros((3, 4, 3), np.uint8))


def test_frame_loads_once_read_only_without_touching_the_callers_array():
    rgb = RGB.copy()
    frame = Frame.load(rgb)
    assert frame.key == frame_key(rgb) and frame.size == (rgb.shape[1], rgb.shape[0])
    assert not frame.rgb.flags.writeable and rgb.flags.writeable  # a read-only view; the caller's array unchanged
    with pytest.raises(ValueError):
        frame.rgb[0, 0, 0] = 1
    bgr = Frame.load(rgb[:, :, ::-1].copy(), color="bgr")
    assert bgr.key == frame.key and np.array_equal(bgr.rgb, rgb)
