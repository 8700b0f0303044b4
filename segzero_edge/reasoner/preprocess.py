"""What the reasoning model takes in besides token ids, in numpy + PIL (no torch, no transformers): the
image preprocessing and the M-RoPE position ids.

Image preprocessing (Qwen2.5-VL):

What the reasoning model sees, step by step (Seg-Zero inference, then the Qwen2-VL image processor):

1. the image is converted to RGB and stretched to ``input_size x input_size`` pixels with PIL
   ``BILINEAR`` (Seg-Zero's ``image.resize((840, 840), PIL.Image.BILINEAR)``; aspect ratio ignored);
2. the Qwen2-VL processor's ``smart_resize`` keeps that size (the size is a multiple of 28 inside the
   processor's pixel range; ``PreprocessConfig`` refuses any size for which it would not);
3. ``rescale``: ``uint8 -> float64 * rescale_factor -> float32`` (as transformers does);
4. ``normalize``: ``(x - mean) / std`` per channel in float32 (OpenAI CLIP mean/std for Qwen);
5. ``patchify``: ``(C, H, W)`` -> ``(grid_h * grid_w, C * T * P * P)`` with the frame repeated
   ``T = temporal_patch_size`` times and the patches ordered in ``merge x merge`` groups, exactly like
   ``transformers``' ``Qwen2VLImageProcessorPil.patchify``.

The result equals ``Qwen2VLImageProcessorPil`` (the PIL backend of transformers' Qwen2-VL image
processor) on the same resized image bit for bit (max |diff| = 0.0, checked in tests). The torchvision
backend of that processor resizes differently and is *not* what we reproduce.

Position ids (``mrope_position_ids``, ``decode_position_ids``): each token gets three positions (temporal,
height, width). Text tokens have the same value in all three rows, counting up by one. The ``t*h*w`` tokens
of an image (after the 2x2 merge) start at the current position ``p``: temporal ``p + t_index``, height
``p + row``, width ``p + column``; the text after the image continues at ``p + max(h, w)`` (in merged
units). Equal to ``transformers``' ``Qwen2_5_VLModel.get_rope_index`` for still images (a test compares
them). During KV-cache decoding the token at absolute index ``i`` of the sequence gets ``i + rope_delta`` in
all three rows, with ``rope_delta = max(prefill positions) + 1 - prefill length``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError, InputError
from ..frame import ImageLike, load_image
from ..prompt import INPUT_SIZE_MULTIPLE, SEG_ZERO_INPUT_SIZE, validate_input_size

#: OpenAI CLIP normalization, used by every Qwen2-VL / Qwen2.5-VL checkpoint.
QWEN_IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
QWEN_IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
#: The processor limits of the official checkpoints (and of Seg-Zero training).
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 12845056


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = QWEN_MIN_PIXELS, max_pixels: int = QWEN_MAX_PIXELS
) -> tuple[int, int]:
    """The size the Qwen2-VL image processor resizes ``(height, width)`` to (transformers' ``smart_resize``)."""
    if max(height, width) / min(height, width) > 200:
        raise InputError(f"absolute aspect ratio must be smaller than 200, got {height}x{width}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of the image preprocessing (recorded in the manifest at export).

    Attributes:
        input_size: the square model input in pixels (840 for Seg-Zero); a multiple of
            ``patch_size * merge_size`` the processor keeps as it is.
        patch_size, temporal_patch_size, merge_size: Qwen2.5-VL vision geometry (14, 2, 2).
        image_mean, image_std: per-channel normalization (RGB).
        rescale_factor: ``1/255``.
        min_pixels, max_pixels: the processor's pixel range (only used to check ``input_size``).
    """

    input_size: int = SEG_ZERO_INPUT_SIZE
    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    image_mean: tuple[float, float, float] = QWEN_IMAGE_MEAN
    image_std: tuple[float, float, float] = QWEN_IMAGE_STD
    rescale_factor: float = 1 / 255
    min_pixels: int = QWEN_MIN_PIXELS
    max_pixels: int = QWEN_MAX_PIXELS

    def __post_init__(self) -> None:
        for name in ("patch_size", "temporal_patch_size", "merge_size", "min_pixels", "max_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"preprocessing: {name} must be a positive int, got {value!r}")
        object.__setattr__(self, "image_mean", tuple(float(v) for v in self.image_mean))
        object.__setattr__(self, "image_std", tuple(float(v) for v in self.image_std))
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ConfigError(
                f"preprocessing: image_mean/std must be 3 values (std > 0), got {self.image_mean} / {self.image_std}"
            )
        if not (self.rescale_factor > 0):
            raise ConfigError(f"preprocessing: rescale_factor must be > 0, got {self.rescale_factor!r}")
        try:
            validate_input_size(self.input_size)
        except InputError as exc:
            raise InputError(f"unsupported image size {self.input_size!r}: {exc.message}", hint=exc.hint) from None
        factor = self.patch_size * self.merge_size
        if factor != INPUT_SIZE_MULTIPLE or self.input_size % factor:
            raise InputError(
                f"unsupported image size {self.input_size}: not a multiple of patch_size*merge_size = {factor}"
            )
        kept = smart_resize(self.input_size, self.input_size, factor, self.min_pixels, self.max_pixels)
        if kept != (self.input_size, self.input_size):
            raise InputError(
                f"unsupported image size {self.input_size}: the Qwen2.5-VL processor would resize "
                f"{self.input_size}x{self.input_size} to {kept[1]}x{kept[0]} (pixel range "
                f"[{self.min_pixels}, {self.max_pixels}])",
                hint="use an input size whose square lies inside the processor's min/max pixels",
            )

    # -- derived geometry -----------------------------------------------------------------------
    @property
    def grid_thw(self) -> tuple[int, int, int]:
        """``(1, grid_h, grid_w)`` in patches: ``(1, 60, 60)`` for 840."""
        g = self.input_size // self.patch_size
        return (1, g, g)

    @property
    def num_patches(self) -> int:
        """Rows of ``pixel_values``: ``grid_h * grid_w`` (3600 for 840)."""
        _, h, w = self.grid_thw
        return h * w

    @property
    def patch_dim(self) -> int:
        """Columns of ``pixel_values``: ``3 * T * P * P`` (1176)."""
        return 3 * self.temporal_patch_size * self.patch_size * self.patch_size

    @property
    def num_image_tokens(self) -> int:
        """Image embeddings the vision tower returns: ``num_patches / merge**2`` (900 for 840)."""
        return self.num_patches // (self.merge_size * self.merge_size)

    # -- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "resize": "bilinear",
            "patch_size": self.patch_size,
            "temporal_patch_size": self.temporal_patch_size,
            "merge_size": self.merge_size,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "rescale_factor": self.rescale_factor,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessConfig:
        keys = {
            "input_size",
            "patch_size",
            "temporal_patch_size",
            "merge_size",
            "image_mean",
            "image_std",
            "rescale_factor",
            "min_pixels",
            "max_pixels",
        }
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in keys})

    @classmethod
    def from_preprocessor_config(cls, data: Mapping[str, Any], input_size: int) -> PreprocessConfig:
        """From a checkpoint's ``preprocessor_config.json`` (transformers format) and the model input size."""
        size = data.get("size") or {}
        min_pixels = data.get("min_pixels", size.get("shortest_edge", QWEN_MIN_PIXELS))
        max_pixels = data.get("max_pixels", size.get("longest_edge", QWEN_MAX_PIXELS))
        if data.get("do_rescale", True) is False or data.get("do_normalize", True) is False:
            raise ConfigError(
                "preprocessor_config.json disables rescaling or normalization; only Qwen2.5-VL's "
                "standard preprocessing is supported"
            )
        return cls(
            input_size=input_size,
            patch_size=int(data.get("patch_size", 14)),
            temporal_patch_size=int(data.get("temporal_patch_size", 2)),
            merge_size=int(data.get("merge_size", 2)),
            image_mean=tuple(data.get("image_mean", QWEN_IMAGE_MEAN)),
            image_std=tuple(data.get("image_std", QWEN_IMAGE_STD)),
            rescale_factor=float(data.get("rescale_factor", 1 / 255)),
            min_pixels=int(min_pixels),
            max_pixels=int(max_pixels),
        )


@dataclass(frozen=True, eq=False)
class PreprocessedImage:
    """One image ready for the vision graph.

    Attributes:
        pixel_values: ``(num_patches, 3 * T * P * P)`` float32, the vision graph's input.
        grid_thw: ``(1, grid_h, grid_w)`` in patches.
        original_size: ``(width, height)`` of the image before resizing (original-image pixels).
    """

    pixel_values: np.ndarray
    grid_thw: tuple[int, int, int]
    original_size: tuple[int, int]


def resize_for_model(image: ImageLike, input_size: int) -> Image.Image:
    """Seg-Zero's resize of any image input (``segzero_edge.frame.load_image``): stretched to
    ``input_size x input_size`` with PIL BILINEAR (aspect ratio ignored), as an RGB PIL image."""
    return Image.fromarray(load_image(image)).resize((input_size, input_size), Image.BILINEAR)


def normalize(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32, rescaled and normalized like transformers (float64 rescale,
    float32 normalization)."""
    chw = np.moveaxis(np.asarray(image), -1, 0)
    x = (chw.astype(np.float64) * config.rescale_factor).astype(np.float32)
    mean = np.asarray(config.image_mean, dtype=np.float32)[:, None, None]
    std = np.asarray(config.image_std, dtype=np.float32)[:, None, None]
    return (x - mean) / std


def patchify(chw: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """``(3, H, W)`` float32 -> ``(grid_h * grid_w, 3 * T * P * P)``: patches in ``merge x merge`` groups,
    each patch's frame repeated ``T`` times (Qwen2VLImageProcessorPil.patchify)."""
    c, h, w = chw.shape
    p, m, t = config.patch_size, config.merge_size, config.temporal_patch_size
    gh, gw = h // p, w // p
    x = chw.reshape(c, gh // m, m, p, gw // m, m, p)
    x = np.transpose(x, (1, 4, 2, 5, 0, 3, 6))  # (gh/m, gw/m, m, m, C, P, P)
    x = np.broadcast_to(x[:, :, :, :, :, None, :, :], (*x.shape[:5], t, *x.shape[5:]))
    return np.ascontiguousarray(x.reshape(gh * gw, c * t * p * p), dtype=np.float32)


def preprocess_image(image: ImageLike, config: PreprocessConfig) -> PreprocessedImage:
    """Everything from a user image to the vision graph's ``pixel_values`` (module docstring)."""
    rgb = load_image(image)
    resized = Image.fromarray(rgb).resize((config.input_size, config.input_size), Image.BILINEAR)
    pixel_values = patchify(normalize(np.asarray(resized), config), config)
    return PreprocessedImage(
        pixel_values=pixel_values, grid_thw=config.grid_thw, original_size=(int(rgb.shape[1]), int(rgb.shape[0]))
    )


def mrope_position_ids(
    input_ids: Sequence[int] | np.ndarray,
    image_token_id: int,
    image_grids_thw: Sequence[tuple[int, int, int]],
    spatial_merge_size: int = 2,
) -> tuple[np.ndarray, int]:
    """Position ids of a prompt.

    Args:
        input_ids: ``(seq,)`` token ids of one prompt (batch of one), image pads already expanded.
        image_token_id: id of ``<|image_pad|>``.
        image_grids_thw: ``(t, h, w)`` in patches (before merging) for each image, in prompt order.
        spatial_merge_size: the vision tower's merge (2).

    Returns:
        ``(position_ids, rope_delta)``: ``position_ids`` is ``(3, 1, seq)`` int64, ``rope_delta`` an int.

    Raises:
        InputError: the number of image-pad runs or their lengths do not match ``image_grids_thw``.
    """
    ids = np.asarray(input_ids, dtype=np.int64).reshape(-1)
    is_image = ids == image_token_id
    # runs of equal token type: (is_image, start, end)
    change = np.flatnonzero(np.diff(is_image.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [ids.size]]).astype(np.int64)
    grids = list(image_grids_thw)
    pieces: list[np.ndarray] = []
    current = 0
    image_index = 0
    for start, end in itertools.pairwise(bounds):
        if end <= start:
            continue
        if not is_image[start]:
            n = int(end - start)
            pieces.append(np.broadcast_to(np.arange(n, dtype=np.int64) + current, (3, n)))
            current += n
            continue
        if image_index >= len(grids):
            raise InputError(f"the prompt has more image-pad runs than images ({len(grids)})")
        t, h, w = (int(v) for v in grids[image_index])
        image_index += 1
        lh, lw = h // spatial_merge_size, w // spatial_merge_size
        if (end - start) != t * lh * lw:
            raise InputError(
                f"image {image_index} has {end - start} pad tokens, its grid {t}x{h}x{w} needs {t * lh * lw}"
            )
        tt, hh, ww = np.meshgrid(np.arange(t), np.arange(lh), np.arange(lw), indexing="ij")
        pieces.append(np.stack([tt.reshape(-1), hh.reshape(-1), ww.reshape(-1)]).astype(np.int64) + current)
        current += max(h, w) // spatial_merge_size
    if image_index != len(grids):
        raise InputError(f"{len(grids)} images given but the prompt has {image_index} image-pad runs")
    positions = np.concatenate(pieces, axis=1) if pieces else np.zeros((3, 0), np.int64)
    rope_delta = int(positions.max()) + 1 - ids.size if ids.size else 0
    return np.ascontiguousarray(positions[:, None, :]), rope_delta


def decode_position_ids(start: int, count: int, rope_delta: int) -> np.ndarray:
    """Position ids ``(3, 1, count)`` int64 of ``count`` new tokens at absolute indices ``start ...``."""
    row = np.arange(start, start + count, dtype=np.int64) + rope_delta
    return np.ascontiguousarray(np.broadcast_to(row, (3, 1, count)))
