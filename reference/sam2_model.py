"""Load an official SAM2 checkpoint into the official model, strictly, with clear errors."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from ..errors import CheckpointError, ConfigError
from ..sam2.configs import SAM2_CONFIGS, is_config_file, resolve_sam2_config

log = logging.getLogger(__name__)

#: Hiera trunk (embed dim, number of blocks) -> size letter of the official configs.
_TRUNKS = {(96, 12): "t", (96, 16): "s", (112, 24): "b+", (144, 48): "l"}


#: ``build_sam2(..., apply_postprocessing=True)``'s overrides of ``model.sam_mask_decoder_extra_args``.
_POSTPROCESSING = {
    "dynamic_multimask_via_stability": True,
    "dynamic_multimask_stability_delta": 0.05,
    "dynamic_multimask_stability_thresh": 0.98,
}


#: ``build_sam2_video_predictor(..., apply_postprocessing=True)``'s further overrides of ``model``.
_VIDEO = {
    "_target_": "sam2.sam2_video_predictor.SAM2VideoPredictor",
    "binarize_mask_from_pts_for_mem_enc": True,
    "fill_hole_area": 8,
}


def build_sam2_model(config: str, *, apply_postprocessing: bool = True, video: bool = False):
    """The official ``SAM2Base`` of ``config`` (random weights, CPU, eval mode); with ``video=True`` the
    official ``SAM2VideoPredictor`` as ``build_sam2_video_predictor`` makes it.

    An official name goes through ``sam2.build_sam.build_sam2`` (``build_sam2_video_predictor`` for video).
    A config file is loaded with OmegaConf and instantiated with ``hydra.utils.instantiate`` the way
    ``build_sam2`` does it (same overrides; ``build_sam2`` itself only composes configs inside the ``sam2``
    package).

    Raises:
        InputError: unknown name or missing file.
        ConfigError: a config file without a ``model`` node whose ``_target_`` is in the ``sam2`` package
            (nothing else is instantiated from a user file).
    """
    resolved = resolve_sam2_config(config)
    if not is_config_file(resolved):
        from sam2.build_sam import build_sam2, build_sam2_video_predictor

        if video:
            return build_sam2_video_predictor(
                resolved, ckpt_path=None, device="cpu", mode="eval", apply_postprocessing=apply_postprocessing
            )
        return build_sam2(
            resolved, ckpt_path=None, device="cpu", mode="eval", apply_postprocessing=apply_postprocessing
        )
    from hydra.utils import instantiate
    from omegaconf import DictConfig, OmegaConf

    try:
        cfg = OmegaConf.load(resolved)
    except Exception as exc:  # yaml / omegaconf raise several types
        raise ConfigError(
            f"cannot read SAM2 config file {resolved}: {exc}",
            hint="pass a YAML file in the official SAM2 config format",
        ) from exc
    target = OmegaConf.select(cfg, "model._target_") if isinstance(cfg, DictConfig) else None
    if not isinstance(target, str) or not target.startswith("sam2."):
        raise ConfigError(
            f"{resolved} is not an official-format SAM2 config (model._target_ = {target!r})",
            hint="the file needs a `model:` node whose _target_ is sam2.modeling.sam2_base.SAM2Base, "
            "like the configs in sam2/configs/sam2.1/",
        )
    if apply_postprocessing:
        cfg = OmegaConf.merge(cfg, {"model": {"sam_mask_decoder_extra_args": dict(_POSTPROCESSING)}})
    if video:
        extra = _VIDEO if apply_postprocessing else {"_target_": _VIDEO["_target_"]}
        cfg = OmegaConf.merge(cfg, {"model": dict(extra)})
    OmegaConf.resolve(cfg)
    model = instantiate(cfg.model, _recursive_=True)
    return model.to("cpu").eval()


def guess_config(state_dict: Mapping[str, object]) -> str | None:
    """The official config a state dict was most likely trained with (None if unknown).

    Uses the trunk's patch-embedding width and block count, and the keys SAM 2.1 added
    (``no_obj_embed_spatial``) to tell 2.1 from 2.0.
    """
    w = state_dict.get("image_encoder.trunk.patch_embed.proj.weight")
    if w is None or not hasattr(w, "shape"):
        return None
    blocks = {k.split(".")[3] for k in state_dict if k.startswith("image_encoder.trunk.blocks.")}
    size = _TRUNKS.get((int(w.shape[0]), len(blocks)))
    if size is None:
        return None
    family = "sam2.1" if "no_obj_embed_spatial" in state_dict else "sam2"
    return f"configs/{family}/{family}_hiera_{size}.yaml"


def _load_error(exc: Exception) -> str:
    """The informative part of a ``torch.load`` error (its messages run to several paragraphs)."""
    text = str(exc)
    if "WeightsUnpickler error" in text:
        after = text.split("WeightsUnpickler error", 1)[1].lstrip(": \n").split("\n")[0].strip()
        return f"the weights-only unpickler refused it ({after or 'unsupported content'})"
    first = text.strip().split("\n")[0] if text.strip() else type(exc).__name__
    return first.split(". ")[0].rstrip(".")


def read_state_dict(path: str | Path) -> Mapping[str, object]:
    """The ``"model"`` state dict of an official SAM2 ``.pt`` file, read with ``weights_only=True``.

    Raises:
        CheckpointError: missing, unreadable or corrupt file, or not the official format.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"SAM2 checkpoint {path} does not exist",
            hint="pass the .pt file downloaded from the SAM2 release (e.g. sam2.1_hiera_tiny.pt)",
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # on damaged bytes the unpickler raises many types (IndexError, EOFError, ...)
        raise CheckpointError(
            f"cannot read SAM2 checkpoint {path}: {_load_error(exc)}",
            hint="the file is corrupt, truncated, not a torch checkpoint, or holds Python objects besides "
            "tensors (refused by weights_only=True): download the official checkpoint again",
        ) from exc
    if not isinstance(obj, Mapping) or not isinstance(obj.get("model"), Mapping):
        keys = sorted(obj)[:5] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{path} is not an official SAM2 checkpoint: expected {{'model': state_dict}}, got {keys}",
            hint="pass a checkpoint in the facebookresearch/sam2 release format",
        )
    return obj["model"]


def load_sam2_model(path: str | Path, config: str, *, video: bool = False):
    """The official ``SAM2Base`` for ``config`` with the checkpoint's weights, in eval mode on the CPU.

    Built with ``sam2.build_sam.build_sam2(..., apply_postprocessing=True)`` (the image predictor's
    settings, including the single-mask stability fallback; with ``video=True``
    ``build_sam2_video_predictor(..., apply_postprocessing=True)``, a ``SAM2VideoPredictor``) for an
    official name, or from a config
    file in the official format the same way (``sam2_config.build_sam2_model``), then loaded with
    strict key matching.

    Raises:
        InputError: unknown config (lists the valid names) or missing config file.
        ConfigError: a config file that is not an official-format SAM2 config.
        CheckpointError: unreadable file, or keys/shapes that do not match the config; the message
            counts missing, unexpected and mis-shaped keys and suggests the matching config.
    """
    config_path = resolve_sam2_config(config)
    state = read_state_dict(path)
    model = build_sam2_model(config_path, video=video)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [k for k in expected if k in state and tuple(getattr(state[k], "shape", ())) != tuple(expected[k].shape)]
    if missing or unexpected or reshaped:
        guess = guess_config(state)
        examples = ", ".join((missing + unexpected + reshaped)[:3])
        if is_config_file(config_path):
            hint = f"pass the config file this checkpoint was trained with (not {config_path})"
        elif guess and guess != config_path:
            hint = (
                f"this looks like a {guess.split('/')[-1].removesuffix('.yaml')} checkpoint: pass --config "
                f"{guess.split('/')[-1].removesuffix('.yaml')}"
            )
        else:
            hint = (
                "pass the --config the checkpoint belongs to: "
                + ", ".join(c.split("/")[-1].removesuffix(".yaml") for c in SAM2_CONFIGS)
                + ", or the config .yaml file it was trained with"
            )
        raise CheckpointError(
            f"checkpoint {path} does not match config {config_path}: {len(missing)} keys missing, "
            f"{len(unexpected)} unexpected, {len(reshaped)} with another shape (e.g. {examples})",
            hint=hint,
        )
    model.load_state_dict(state, strict=True)
    model.eval()
    log.info("loaded %s into %s (%d tensors)", path, config_path, len(expected))
    return model
