"""Image inputs: one function turns what users pass into the HxWx3 uint8 RGB array every stage uses.

Accepted: a path (``str`` / ``os.PathLike``), a ``PIL.Image.Image`` (any mode), or a numpy array of
dtype uint8 shaped ``HxW`` (grayscale), ``HxWx1``, ``HxWx3`` (RGB, or BGR with ``color="bgr"`` for
OpenCV frames) or ``HxWx4`` (RGBA / BGRA; alpha is dropped).
"""

from __future__ import annotations

import hashlib
import os
from typing import Literal, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError

ImageLike = Union[str, "os.PathLike[str]", Image.Image, np.ndarray]
Color = Literal["rgb", "bgr"]

_HINT = "pass a file path, a PIL image, or an HxWx3 uint8 RGB numpy array (color='bgr' for OpenCV frames)"


def load_image(image: ImageLike, *, color: Color = "rgb") -> np.ndarray:
    """Return ``image`` as a C-contiguous ``(H, W, 3)`` uint8 RGB array.

    Args:
        image: path, PIL image or uint8 array (see the module docstring for the accepted shapes).
        color: channel order of a numpy array input: ``"rgb"`` or ``"bgr"``. Ignored for paths and
            PIL images, which carry their own mode.

    Raises:
        InputError: unreadable file, unsupported type, dtype or shape, or an image with zero size.
    """
    if color not in ("rgb", "bgr"):
        raise InputError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        try:
            with Image.open(path) as im:
                im.load()
                return _from_pil(im)
        except FileNotFoundError:
            raise InputError(f"image file {path} does not exist", hint=_HINT) from None
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"cannot read image file {path}: {exc}", hint=_HINT) from exc
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if isinstance(image, np.ndarray):
        return _from_array(image, color)
    raise InputError(f"unsupported image type {type(image).__name__}", hint=_HINT)


def _from_pil(im: Image.Image) -> np.ndarray:
    if im.width == 0 or im.height == 0:
        raise InputError(f"the image has zero size ({im.width}x{im.height})", hint=_HINT)
    if im.mode != "RGB":
        im = im.convert("RGB")  # grayscale, palette, RGBA (alpha dropped), CMYK, 16-bit...
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _from_array(arr: np.ndarray, color: Color) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise InputError(
            f"image arrays must be uint8, got {arr.dtype}",
            hint="convert with (img * 255).clip(0, 255).astype(np.uint8) if it holds floats in [0, 1]",
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"image arrays must be HxW, HxWx3 or HxWx4, got shape {arr.shape}", hint=_HINT)
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"the image has zero size (shape {arr.shape})", hint=_HINT)
    arr = arr[:, :, :3]
    if color == "bgr":
        arr = arr[:, :, ::-1]
    return np.ascontiguousarray(arr)


def image_key(rgb: np.ndarray) -> str:
    """A content hash of an ``(H, W, 3)`` uint8 image: equal pixels give equal keys (cache key)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(rgb.shape, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(rgb).data)
    return h.hexdigest()
