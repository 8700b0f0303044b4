"""The tiny SAM2 of the world: the official ``SAM2Base`` built from our config file, and its forward pass.

The config (``world/assets/sam2_tiny.yaml``) is in the official format (``sam2/configs/sam2.1/*.yaml``:
``# @package _global_`` and a ``model:`` node of ``_target_`` entries). ``build_sam2`` of the official
package only composes configs *inside* the package through Hydra's search path, so a config file is
loaded with OmegaConf and instantiated with ``hydra.utils.instantiate`` exactly like ``build_sam2``
does, including its ``apply_postprocessing`` overrides (the single-mask stability fallback).

Forward (the image path of ``SAM2ImagePredictor``, batched over images and objects):

* ``encode(model, images)``: ``images`` ``[B, 3, S, S]`` normalized -> ``image_embed`` ``[B, C, S/16, S/16]``
  (``no_mem_embed`` added), ``high_res_feats_0`` ``[B, C/8, S/4, S/4]``, ``high_res_feats_1``
  ``[B, C/4, S/8, S/8]``;
* ``decode(model, feats, image_index, coords, labels)``: all four mask tokens for N objects, each
  on its image ``image_index[n]``: low-res logits ``[N, 4, S/4, S/4]``, predicted IoUs ``[N, 4]`` and
  object score logits ``[N, 1]``. ``coords`` ``[N, P, 2]`` are (x, y) in model-input pixels with box
  corners first (labels 2, 3), then points (label 1), as the official predictor orders them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from segzero_edge.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)


def default_config_path() -> Path:
    """The shipped ``assets/sam2_tiny.yaml`` of this package."""
    from . import ASSETS

    return ASSETS / "sam2_tiny.yaml"


def build_model(config: str | Path, *, seed: int = 0):
    """A fresh official ``SAM2Base`` from a config file, seeded random weights, on the CPU, in train mode.

    Raises:
        ConfigError: missing file, no ``model`` node, or a ``_target_`` outside the ``sam2`` package.
    """
    import torch

    from segzero_edge.reference.sam2_model import build_sam2_model

    path = Path(config)
    if not path.is_file():
        raise ConfigError(f"SAM2 config {path} does not exist", hint="pass the shipped world/assets/sam2_tiny.yaml")
    torch.manual_seed(seed)
    return build_sam2_model(str(path)).train()


def save_checkpoint(model, path: str | Path) -> Path:
    """Write ``{"model": state_dict}`` (the official format) atomically; returns the path."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": {k: v.detach().clone() for k, v in model.state_dict().items()}}, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(model, path: str | Path):
    """Load an official-format checkpoint strictly (``weights_only=True``) into ``model``; returns it.

    Raises:
        CheckpointError: unreadable file, not ``{"model": ...}``, or keys/shapes that do not match.
    """
    import torch

    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)["model"]
        model.load_state_dict(state, strict=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot load {path} into the tiny SAM2: {str(exc).splitlines()[0]}",
            hint="pass the checkpoint written by sam2_train together with the config it was trained with",
        ) from exc
    return model


def normalize(images: np.ndarray):
    """``[B, S, S, 3]`` uint8 RGB at the model size -> ``[B, 3, S, S]`` float32 tensor (ImageNet-normalized).

    Equal to ``SAM2Transforms`` when the image already has the model's size (the resize is the identity).
    """
    import torch

    from segzero_edge.reference.torch_sam2 import PIXEL_MEAN, PIXEL_STD

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255)
    mean = torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def encode(model, images):
    """``images`` ``[B, 3, S, S]`` -> (``image_embed``, ``high_res_feats_0``, ``high_res_feats_1``), batched."""
    b = images.shape[0]
    s = model.image_size
    sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
    backbone_out = model.forward_image(images)
    _, vision_feats, _, _ = model._prepare_backbone_features(backbone_out)
    if model.directly_add_no_mem_embed:
        vision_feats[-1] = vision_feats[-1] + model.no_mem_embed
    feats = [f.permute(1, 2, 0).reshape(b, -1, *hw) for f, hw in zip(vision_feats, sizes)]
    return feats[2], feats[0], feats[1]


def prompt_tensors(prompts) -> tuple:
    """Prompts (``sam2_data.Prompt``) -> ``coords`` ``[N, 4, 2]`` and ``labels`` ``[N, 4]`` tensors:
    box corners (labels 2, 3) then the two points (label 1), in model-input pixels."""
    import torch

    coords = np.stack([np.concatenate([p.box.reshape(2, 2), p.points]) for p in prompts]).astype(np.float32)
    labels = np.tile(np.array([2, 3, 1, 1], np.int64), (len(prompts), 1))
    return torch.from_numpy(coords), torch.from_numpy(labels)


def decode(model, feats, image_index, coords, labels):
    """All four mask tokens of N objects (see the module docstring); ``image_index`` ``[N]`` long."""
    image_embed, hr0, hr1 = feats
    pe = model.sam_prompt_encoder
    sparse, dense = pe(points=(coords, labels), boxes=None, masks=None)
    low_res, iou, _, obj = model.sam_mask_decoder.predict_masks(
        image_embeddings=image_embed[image_index],
        image_pe=pe.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        repeat_image=False,
        high_res_features=[hr0[image_index], hr1[image_index]],
    )
    return low_res, iou, obj
