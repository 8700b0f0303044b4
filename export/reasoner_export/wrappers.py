"""torch modules around ``transformers``' Qwen2.5-VL parts, shaped for ONNX export.

Only the vision tower goes through ``torch.onnx.export``: its window index, rotary positions and attention
splits depend on the image grid, which ``torch.export`` (dynamo) cannot trace (``grid_thw`` is
``.item()``-ed), so it is exported with the TorchScript exporter (``dynamo=False``) for one fixed grid,
baked into the graph as constants. The decoder is written directly (``decoder_graph.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from .checkpoint import WeightReader

log = logging.getLogger(__name__)


def _torch():
    import torch

    return torch


def make_vision_wrapper(visual: Any, grid_thw: tuple[int, int, int]):
    """``pixel_values [num_patches, 3*T*P*P]`` -> ``image_embeds [num_patches / merge^2, out_hidden]``.

    The grid is a constant of the wrapper: the exported graph is valid for this grid only.
    """
    torch = _torch()

    class VisionWrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = visual
            self.register_buffer("grid_thw", torch.tensor([list(grid_thw)], dtype=torch.long), persistent=False)

        def forward(self, pixel_values):
            return self.visual(pixel_values, grid_thw=self.grid_thw).pooler_output

    return VisionWrapper().eval()


def load_vision_tower(config: Any, weights: WeightReader):
    """transformers' ``Qwen2_5_VisionTransformerPretrainedModel`` in float32 with the checkpoint's weights.

    Built without random initialisation, then filled one tensor at a time (no second copy of the weights).
    """
    torch = _torch()
    from transformers.initialization import no_init_weights
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    vc = config.vision_config
    vc._attn_implementation = "sdpa"
    with no_init_weights():
        visual = Qwen2_5_VisionTransformerPretrainedModel._from_config(vc, dtype=torch.float32)
    params = dict(visual.named_parameters())
    missing = set(params)
    with torch.no_grad():
        for name in list(weights.names()):
            if not name.startswith("visual."):
                continue
            key = name[len("visual.") :]
            if key not in params:
                log.warning("ignoring unexpected vision weight %s", name)
                continue
            params[key].copy_(torch.from_numpy(weights.get(name)))
            missing.discard(key)
    if missing:
        from segzero_edge.errors import CheckpointError

        raise CheckpointError(f"the checkpoint lacks vision weights: {sorted(missing)[:5]}")
    return visual.eval()


def rotary_inv_freq(config: Any):
    """The language model's RoPE inverse frequencies, computed by transformers' own rotary module (float32)."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLRotaryEmbedding

    return Qwen2_5_VLRotaryEmbedding(config=config.text_config).inv_freq.float().numpy()


def load_reference_model(config: Any, weights: WeightReader):
    """transformers' ``Qwen2_5_VLForConditionalGeneration`` in float32 with the checkpoint's weights, filled one
    tensor at a time (no random init, no second copy of the weights in the checkpoint's dtype): the fp32
    reference of the validation at the memory of the fp32 model itself (15 GB for 3B, 33 GB for 7B).

    Equal to ``from_pretrained(dtype=torch.float32)`` (a test compares the two state dicts).
    """
    torch = _torch()
    from transformers import Qwen2_5_VLForConditionalGeneration
    from transformers.initialization import no_init_weights

    from segzero_edge.errors import CheckpointError

    with no_init_weights():
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.float32)
    params = dict(model.named_parameters())
    missing = set(params)
    prefixes = (("lm.", "model.language_model."), ("visual.", "model.visual."), ("lm_head.", "lm_head."))
    with torch.no_grad():
        for name in list(weights.names()):
            if name.startswith("lens."):  # LENS's mask head: not part of the Qwen2.5-VL model
                continue
            target = next((new + name[len(old) :] for old, new in prefixes if name.startswith(old)), None)
            if target not in params:
                if not (target == "lm_head.weight" and config.tie_word_embeddings):
                    log.warning("ignoring unexpected weight %s", name)
                continue
            params[target].copy_(torch.from_numpy(weights.get(name)))
            missing.discard(target)
    if config.tie_word_embeddings:
        model.tie_weights()  # the LM head is the embedding table
        if model.lm_head.weight is not model.model.language_model.embed_tokens.weight:
            model.lm_head.weight = model.model.language_model.embed_tokens.weight
        missing.discard("lm_head.weight")
    if missing:
        raise CheckpointError(f"the checkpoint lacks weights: {sorted(missing)[:5]}")
    return model.eval()
