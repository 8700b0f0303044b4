"""SAM 2 model configs: the official names (and how user-given names map to them), or a config file.

A config is either the name of an official config shipped inside the ``sam2`` package (composed by
Hydra, as ``sam2.build_sam.build_sam2`` does) or the path of a YAML file in the same official format
(``# @package _global_`` + a ``model:`` node), e.g. ``assets/world/sam2_tiny.yaml``, the world's tiny
SAM2. ``build_sam2_model`` builds either.
"""

from __future__ import annotations

from pathlib import Path

from segzero_edge.errors import ConfigError, InputError

#: Canonical Hydra config names shipped inside the official ``sam2`` package.
SAM2_CONFIGS: tuple[str, ...] = tuple(
    f"configs/{family}/{family}_hiera_{size}.yaml"
    for family in ("sam2.1", "sam2")
    for size in ("t", "s", "b+", "l")
)

_SIZE_ALIASES = {"t": "t", "tiny": "t", "s": "s", "small": "s", "b+": "b+", "base_plus": "b+",
                 "base-plus": "b+", "bplus": "b+", "l": "l", "large": "l"}


#: ``build_sam2(..., apply_postprocessing=True)``'s overrides of ``model.sam_mask_decoder_extra_args``.
_POSTPROCESSING = {
    "dynamic_multimask_via_stability": True,
    "dynamic_multimask_stability_delta": 0.05,
    "dynamic_multimask_stability_thresh": 0.98,
}


def _looks_like_file(raw: str) -> bool:
    return raw.endswith((".yaml", ".yml")) or "/" in raw or "\\" in raw


def is_config_file(config: str) -> bool:
    """True when ``config`` (as resolved by ``resolve_sam2_config``) is a config file, not an official name."""
    return str(config) not in SAM2_CONFIGS


def resolve_sam2_config(name: str | Path) -> str:
    """Map a config name to the official Hydra config path, or check a config file path.

    Accepted forms, for every official config: ``configs/sam2.1/sam2.1_hiera_t.yaml``,
    ``sam2.1_hiera_t.yaml``, ``sam2.1_hiera_t``, ``sam2.1-hiera-tiny`` and the hub id
    ``facebook/sam2.1-hiera-tiny`` (likewise ``sam2_hiera_*`` for SAM 2.0). Anything else that names
    an existing ``.yaml``/``.yml`` file is a config file in the official format; it is returned as
    given (official names win when both match).

    Raises:
        InputError: unknown name (the message lists the valid ones), or a config file that does not exist.
    """
    raw = str(name).strip()
    key = raw.removeprefix("facebook/").removeprefix("configs/").removesuffix(".yaml")
    key = key.split("/")[-1]
    for family in ("sam2.1", "sam2"):
        for sep in ("_hiera_", "-hiera-"):
            prefix = family + sep
            if key.startswith(prefix):
                size = _SIZE_ALIASES.get(key[len(prefix):])
                if size is not None:
                    return f"configs/{family}/{family}_hiera_{size}.yaml"
    valid = ", ".join(c.split("/")[-1].removesuffix(".yaml") for c in SAM2_CONFIGS)
    if Path(raw).is_file() and raw.endswith((".yaml", ".yml")):
        return raw
    if _looks_like_file(raw):
        raise InputError(
            f"SAM2 config file {raw!r} does not exist (and it is not an official config name)",
            hint=f"pass an existing .yaml file in the official SAM2 config format, or one of: {valid}",
        )
    raise InputError(f"unknown SAM2 config {raw!r}", hint=f"use one of: {valid}, or a config .yaml file")


def build_sam2_model(config: str, *, apply_postprocessing: bool = True):
    """The official ``SAM2Base`` of ``config`` (random weights, CPU, eval mode).

    An official name goes through ``sam2.build_sam.build_sam2``. A config file is loaded with OmegaConf
    and instantiated with ``hydra.utils.instantiate`` the way ``build_sam2`` does it (same overrides;
    ``build_sam2`` itself only composes configs inside the ``sam2`` package).

    Raises:
        InputError: unknown name or missing file.
        ConfigError: a config file without a ``model`` node whose ``_target_`` is in the ``sam2`` package
            (nothing else is instantiated from a user file).
    """
    resolved = resolve_sam2_config(config)
    if not is_config_file(resolved):
        from sam2.build_sam import build_sam2

        return build_sam2(resolved, ckpt_path=None, device="cpu", mode="eval",
                          apply_postprocessing=apply_postprocessing)
    from hydra.utils import instantiate
    from omegaconf import DictConfig, OmegaConf

    try:
        cfg = OmegaConf.load(resolved)
    except Exception as exc:  # yaml / omegaconf raise several types
        raise ConfigError(f"cannot read SAM2 config file {resolved}: {exc}",
                          hint="pass a YAML file in the official SAM2 config format") from exc
    target = OmegaConf.select(cfg, "model._target_") if isinstance(cfg, DictConfig) else None
    if not isinstance(target, str) or not target.startswith("sam2."):
        raise ConfigError(
            f"{resolved} is not an official-format SAM2 config (model._target_ = {target!r})",
            hint="the file needs a `model:` node whose _target_ is sam2.modeling.sam2_base.SAM2Base, "
            "like the configs in sam2/configs/sam2.1/",
        )
    if apply_postprocessing:
        cfg = OmegaConf.merge(cfg, {"model": {"sam_mask_decoder_extra_args": dict(_POSTPROCESSING)}})
    OmegaConf.resolve(cfg)
    model = instantiate(cfg.model, _recursive_=True)
    return model.to("cpu").eval()
