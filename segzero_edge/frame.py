"""Frames: what users pass as an image becomes, once, the ``(H, W, 3)`` uint8 RGB array every stage uses,
with a content key; ``FrameCache`` keeps the per-frame work of the stages under that key.

Accepted images: a path (``str`` / ``os.PathLike``), a ``PIL.Image.Image`` (8-bit modes and 16-bit
grayscale; see ``load_image`` for the conversions), or a numpy array of dtype uint8 shaped ``HxW``
(grayscale), ``HxWx1``, ``HxWx3`` (RGB, or BGR with ``color="bgr"`` for OpenCV frames) or ``HxWx4``
(RGBA / BGRA; alpha is dropped).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError

ImageLike = Union[str, "os.PathLike[str]", Image.Image, np.ndarray]
Color = Literal["rgb", "bgr"]

_HINT = "pass a file path, a PIL image, or an HxWx3 uint8 RGB numpy array (color='bgr' for OpenCV frames)"
_CONVERT_HINT = "convert it to 8-bit RGB yourself, e.g. np.clip(x * 255, 0, 255).astype(np.uint8) for floats in [0, 1]"


def load_image(image: ImageLike, *, color: Color = "rgb") -> np.ndarray:
    """Return ``image`` as a C-contiguous ``(H, W, 3)`` uint8 RGB array.

    Every conversion is decided here (``_from_pil``): 8-bit modes through Pillow's own conversion (alpha
    dropped, palette expanded, CMYK/YCbCr/HSV converted); 16-bit grayscale (``I;16*``, and ``I`` read from a
    16-bit PNG) scaled to 8 bits with ``round(v / 257)``; modes without a standard 8-bit range (float ``F``,
    32-bit ``I``, ``LAB``) refused, since any clipping would be a silent guess.

    Args:
        image: path, PIL image or uint8 array (see the module docstring for the accepted shapes).
        color: channel order of a numpy array input: ``"rgb"`` or ``"bgr"``. Ignored for paths and
            PIL images, which carry their own mode.

    Raises:
        InputError: unreadable file, an image larger than Pillow's decompression-bomb limit, unsupported
            type, mode, dtype or shape, or an image with zero size.
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
        except IsADirectoryError:
            raise InputError(f"{path} is a folder, not an image file", hint=_HINT) from None
        except Image.DecompressionBombError as exc:
            raise InputError(
                f"image file {path} is too large to decode safely ({exc})",
                hint="downscale it first, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file",
            ) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise InputError(f"cannot read image file {path}: {exc}", hint=_HINT) from exc
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if isinstance(image, np.ndarray):
        return _from_array(image, color)
    raise InputError(f"unsupported image type {type(image).__name__}", hint=_HINT)


#: Pillow modes of 16-bit grayscale, scaled to 8 bits.
_MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N")
#: Pillow modes refused: no standard mapping to 8-bit RGB (values may be in [0, 1], metres, raw counts...).
_MODES_REFUSED = {
    "F": "32-bit float pixels (Pillow mode F), which have no standard 8-bit range",
    "I": "32-bit integer pixels (Pillow mode I), which have no standard 8-bit range",
    "LAB": "CIELAB pixels (Pillow mode LAB), which Pillow's convert('RGB') does not convert",
}


def _from_pil(im: Image.Image) -> np.ndarray:
    if im.width == 0 or im.height == 0:
        raise InputError(f"the image has zero size ({im.width}x{im.height})", hint=_HINT)
    mode = im.mode
    if mode in _MODES_16BIT or (mode == "I" and im.format == "PNG"):  # Pillow reads some 16-bit PNGs as "I"
        gray = np.asarray(im).astype(np.float64)
        if gray.min() < 0 or gray.max() > 65535:
            raise InputError(f"a 16-bit image has values outside 0..65535 (mode {mode})", hint=_CONVERT_HINT)
        gray = np.rint(gray / 257.0).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in _MODES_REFUSED:
        raise InputError(
            f"the image has {_MODES_REFUSED[mode]}",
            hint=_CONVERT_HINT,
        )
    if mode == "La":
        im = im.convert("LA")  # premultiplied alpha: Pillow converts it to RGB only through LA
    if im.mode != "RGB":
        try:
            im = im.convert("RGB")  # grayscale, palette, RGBA (alpha dropped), CMYK, YCbCr, HSV
        except ValueError as exc:
            raise InputError(f"cannot convert an image of mode {mode} to RGB: {exc}", hint=_CONVERT_HINT) from None
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _from_array(arr: np.ndarray, color: Color) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise InputError(
            f"image arrays must be uint8, got {arr.dtype}",
            hint="convert it: (img * 255).clip(0, 255).astype(np.uint8) for floats in [0, 1], "
            "np.rint(img / 257).astype(np.uint8) for uint16",
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


def frame_key(rgb: np.ndarray) -> str:
    """A content hash of an ``(H, W, 3)`` uint8 image: equal pixels give equal keys (blake2b over the shape
    and the pixels; about 1 ms per megapixel)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(rgb.shape, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(rgb).data)
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class Frame:
    """One input image, loaded once.

    Attributes:
        rgb: ``(H, W, 3)`` uint8 RGB, C-contiguous, read-only (a view of the caller's array when it was one
            already: do not write into that array while a request on it runs).
        key: ``frame_key(rgb)``, the cache key of every stage's per-frame work.
    """

    rgb: np.ndarray
    key: str

    @classmethod
    def load(cls, image: ImageLike, *, color: Color = "rgb") -> Frame:
        """``load_image(image, color=color)`` and its key."""
        rgb = load_image(image, color=color).view()
        rgb.setflags(write=False)
        return cls(rgb, frame_key(rgb))

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


class FrameCache:
    """The per-frame work of every stage (SAM2 features, vision embeddings), for the last ``maxsize`` frames.

    Each ``(frame key, stage)`` is computed once, even when several threads ask at the same time: the others
    wait for that computation. A failed computation is not kept. Frames are evicted least recently used
    first, with everything computed for them; ``maxsize=0`` disables caching (every call computes).

    Attributes:
        hits, misses: lookups answered from the cache (or by waiting for another thread) / computed.
    """

    def __init__(self, maxsize: int = 4) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise InputError(f"cache_size must be an int >= 0, got {maxsize!r}")
        self.maxsize = maxsize
        self._frames: OrderedDict[Hashable, dict[str, Future]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, stage: str, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """The value of ``stage`` for frame ``key``, computed with ``compute()`` on a miss.

        Returns:
            ``(value, hit)``: ``hit`` is True when no computation ran for this call.
        """
        if self.maxsize == 0:
            with self._lock:
                self.misses += 1
            return compute(), False
        with self._lock:
            entry = self._frames.get(key)
            if entry is None:
                entry = self._frames[key] = {}
                while len(self._frames) > self.maxsize:
                    self._frames.popitem(last=False)
            else:
                self._frames.move_to_end(key)
            future = entry.get(stage)
            owner = future is None
            if owner:
                future = entry[stage] = Future()
                self.misses += 1
            else:
                self.hits += 1
        if not owner:
            return future.result(), True
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                if entry.get(stage) is future:
                    del entry[stage]
            future.set_exception(exc)
            raise
        future.set_result(value)
        return value, False

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()

    def __len__(self) -> int:
        """Frames held."""
        with self._lock:
            return len(self._frames)
