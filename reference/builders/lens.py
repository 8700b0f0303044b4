"""Random-weight LENS checkpoints in LENS's published layout, for tests, the demo and benchmarks.

The directory is what ``SAMR1ForConditionalGeneration_qwen2p5.save_pretrained`` writes under transformers
4.51 (reference/other_families.md §1.3)::

    config.json              a Qwen2.5-VL config saved as ``model_type: "qwen2_vl"`` (LENS's config class
                             subclasses Qwen2VLConfig) with ``num_of_query`` and ``if_use_qwen_connector``
                             (``model_type="qwen2_5_vl"`` on request)
    model.safetensors        the 4.51 key names: ``model.*`` (language model), ``visual.*``, ``lm_head.weight``;
                             ``learnable_query`` [1,Q,H], ``connector.*``, ``conv_1d.*``, ``proj_to_sam.*``;
                             ``sam.*``: a SAM2 2.0 model without its memory modules
    tokenizer.json, tokenizer_config.json, preprocessor_config.json, generation_config.json, chat template

No ``segzero_edge.json``: LENS checkpoints carry none (export them with ``--input-size``).

The SAM2 inside is a random "stock" model (``stock_sam2``: its official ``.pt``, memory modules included)
whose prompt encoder and mask decoder were then perturbed, as LENS fine-tunes them; the image encoder is the
stock one unless ``tune_image_encoder``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from segzero_edge.errors import InputError
from segzero_edge.files import publish_modes, writable_parent
from segzero_edge.prompt import CHECKPOINT_META_FILE
from segzero_edge.reference.lens import SAM2_MEMORY_PREFIXES, SAM2_TUNED_PREFIXES, context_keys

from .qwen import build_tiny_qwen25vl
from .sam2 import build_sam2_model

log = logging.getLogger(__name__)


def lens_key_name(name: str) -> str:
    """transformers-5 Qwen2.5-VL key -> the transformers 4.51 name a LENS checkpoint uses."""
    for new, old in (("model.language_model.", "model."), ("model.visual.", "visual.")):
        if name.startswith(new):
            return old + name[len(new) :]
    return name


def build_tiny_lens(
    out_dir: str | Path,
    *,
    size: str = "tiny",
    num_layers: int | None = None,
    vision_depth: int | None = None,
    num_queries: int = 8,
    sam2_config: str = "sam2_hiera_t",
    model_type: str = "qwen2_vl",
    seed: int = 0,
    stock_sam2: str | Path | None = None,
    tune_image_encoder: bool = False,
    drop: tuple[str, ...] = (),
) -> Path:
    """Write a random-weight LENS checkpoint directory to ``out_dir`` (new or empty).

    Args:
        size: the Qwen2.5-VL shapes (``builders.qwen.QWEN_SIZES``); ``num_layers`` / ``vision_depth``
            override its text layers and vision blocks (``build_tiny_qwen25vl``).
        num_queries: Q, the learned queries (64 in LENS's releases; fewer keeps tests fast).
        sam2_config: the SAM2 inside (LENS: ``sam2_hiera_l``; tests use the tiny 2.0 ``sam2_hiera_t``).
        model_type: ``"qwen2_vl"`` (as LENS saves it) or ``"qwen2_5_vl"``.
        seed: weights seed (same seed, same bytes).
        stock_sam2: also write the unperturbed SAM2 as an official ``.pt`` here.
        tune_image_encoder: perturb the image encoder too (a checkpoint whose encoder is not stock).
        drop: checkpoint tensor names to leave out (to build broken checkpoints for tests).

    Returns:
        ``out_dir`` as a ``Path``.
    """
    import torch
    from safetensors.torch import load_file, save_file

    from .qwen import QWEN_SIZES

    if model_type not in ("qwen2_vl", "qwen2_5_vl"):
        raise InputError(f"model_type must be qwen2_vl or qwen2_5_vl, got {model_type!r}")
    out = Path(out_dir).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} is not a new or empty directory")
    hidden = QWEN_SIZES[size].hidden_size
    with tempfile.TemporaryDirectory(prefix=".lens-build-", dir=writable_parent(out).parent) as tmp:
        qwen = Path(tmp) / "qwen"
        build_tiny_qwen25vl(qwen, size, num_layers=num_layers, vision_depth=vision_depth, seed=seed)
        state = {lens_key_name(k): v for k, v in load_file(str(qwen / "model.safetensors")).items()}
        sam = build_sam2_model(sam2_config, seed=seed)
        gen = torch.Generator().manual_seed(seed + 1)
        for key, shape in context_keys(num_queries, hidden, int(sam.hidden_dim), 4).items():
            fan_in = shape[-1] if len(shape) > 1 else hidden
            if key.endswith(("norm1.weight", "norm2.weight")):
                state[key] = torch.ones(shape)
            elif key.endswith("bias"):
                state[key] = torch.randn(shape, generator=gen) * 0.02
            else:
                scale = 1.0 if key in ("learnable_query", "connector.pos_embed") else fan_in**-0.5
                if key == "conv_1d.weight":
                    scale = (hidden * num_queries) ** -0.5
                state[key] = torch.randn(shape, generator=gen) * scale
        stock = {k: v.detach().clone() for k, v in sam.state_dict().items()}
        if stock_sam2 is not None:
            torch.save({"model": stock}, writable_parent(stock_sam2))
        tuned = SAM2_TUNED_PREFIXES + (("image_encoder.",) if tune_image_encoder else ())
        for key, value in stock.items():
            if key.startswith(SAM2_MEMORY_PREFIXES):
                continue
            if key.startswith(tuned) and value.is_floating_point():
                value = value + 0.01 * torch.randn(value.shape, generator=gen) * (
                    value.std() if value.numel() > 1 else 1
                )
            state["sam." + key] = value.contiguous()
        for name in drop:
            state.pop(name, None)
        ckpt = Path(tmp) / "lens"
        ckpt.mkdir()
        save_file(
            {k: v.contiguous() for k, v in state.items()}, str(ckpt / "model.safetensors"), metadata={"format": "pt"}
        )
        config = json.loads((qwen / "config.json").read_text())
        config["model_type"] = model_type
        config["vision_config"]["model_type"] = model_type
        config["architectures"] = ["SAMR1ForConditionalGeneration_qwen2p5"]
        config.update(num_of_query=num_queries, if_use_qwen_connector=True)
        (ckpt / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        for f in qwen.iterdir():
            if f.name not in ("config.json", "model.safetensors", CHECKPOINT_META_FILE):
                shutil.copy2(f, ckpt / f.name)
        publish_modes(ckpt)  # mkdtemp and safetensors make files private; a checkpoint is not
        if out.exists():
            out.rmdir()
        shutil.move(str(ckpt), str(out))
    log.info("wrote random LENS checkpoint %s (%s, Q=%d, SAM2 %s, seed %d)", out, size, num_queries, sam2_config, seed)
    return out
