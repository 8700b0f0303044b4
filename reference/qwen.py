"""Load a Hugging Face Qwen2.5-VL checkpoint directory (real, or from ``segzero-edge export tiny-reasoner``).

Export, training and the torch reference backend all load reasoner checkpoints through these two
functions, so they see the same tokenizer, image preprocessing and weights:

* ``load_qwen_processor(path)``: tokenizer (``AutoTokenizer``), the PIL/numpy ``Qwen2VLImageProcessor``
  and a ``Qwen2_5_VLProcessor`` that works without a video processor. ``AutoProcessor`` cannot be used
  where torchvision is missing (its video processor requires it), and the torchvision-backed image
  processor gives pixel values up to 0.34 away from the PIL one, so the PIL backend is always used:
  it is the one Seg-Zero was trained with (transformers 4.x "slow" processor), and it is the same on
  every machine.
* ``load_qwen_model(path, dtype)``: ``Qwen2_5_VLForConditionalGeneration`` in eval mode.

This module is part of the torch-free runtime package: torch and transformers are imported inside
the functions only.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, InputError, missing_extra

log = logging.getLogger(__name__)

__all__ = ["QWEN25VL_CHAT_TEMPLATE", "load_qwen_model", "load_qwen_processor", "processor_class"]

#: Qwen2.5-VL's chat template as shipped in the official checkpoints (chat_template.json): what a checkpoint
#: without one gets, and what the builders write. The runtime renders the same text without Jinja
#: (``segzero_edge.prompt.render_chat``; tests check the two agree).
QWEN25VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


_DTYPES = ("float32", "bfloat16", "float16", "auto")


def _import_transformers():
    try:
        import transformers
    except ImportError as exc:
        raise missing_extra("loading a Hugging Face Qwen2.5-VL checkpoint", "torch", cause=exc) from exc
    return transformers


def _checkpoint_dir(path: str | Path, *, needs: tuple[str, ...]) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(
            f"{path} is not a directory",
            hint="pass a Hugging Face Qwen2.5-VL checkpoint directory "
            "(e.g. one written by `segzero-edge export tiny-reasoner`)",
        )
    for name in needs:
        if not (path / name).is_file():
            raise CheckpointError(
                f"{path} has no {name}: it is not a complete Qwen2.5-VL checkpoint",
                hint="copy the whole checkpoint directory (config, weights, tokenizer, preprocessor files)",
            )
    return path


@functools.lru_cache(maxsize=1)
def processor_class() -> type:
    """``Qwen2_5_VLProcessor`` that accepts ``video_processor=None`` (needed without torchvision).

    Built on first use so that importing this module does not import transformers. Reachable as
    ``segzero_edge.reference.qwen.SegZeroQwenProcessor`` (so instances pickle).
    """
    from transformers import Qwen2_5_VLProcessor

    class SegZeroQwenProcessor(Qwen2_5_VLProcessor):
        """A ``Qwen2_5_VLProcessor`` for images only: the video processor may be None."""

        def check_argument_for_proper_class(self, argument_name, argument):
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

        def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
            """Save tokenizer, chat template and image processor (the parent fails without a video one)."""
            if getattr(self, "video_processor", None) is not None:
                return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
            if push_to_hub:
                raise InputError(
                    "push_to_hub is not supported by the image-only processor",
                    hint="save to a directory and upload it yourself",
                )
            save_directory = Path(save_directory)
            save_directory.mkdir(parents=True, exist_ok=True)
            if self.chat_template and not self.tokenizer.chat_template:
                self.tokenizer.chat_template = self.chat_template
            files = list(self.tokenizer.save_pretrained(str(save_directory)))
            files += list(self.image_processor.save_pretrained(str(save_directory)))
            config = save_directory / "preprocessor_config.json"
            if config.is_file():  # name the processor class, as the official checkpoints do
                data = json.loads(config.read_text())
                data["processor_class"] = "Qwen2_5_VLProcessor"
                config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
            return files

    SegZeroQwenProcessor.__module__ = __name__
    SegZeroQwenProcessor.__qualname__ = "SegZeroQwenProcessor"
    return SegZeroQwenProcessor


def __getattr__(name: str) -> Any:
    if name == "SegZeroQwenProcessor":
        return processor_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _chat_template(path: Path, tokenizer) -> str:
    """The checkpoint's chat template: tokenizer config, chat_template.jinja or chat_template.json."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template
    if (path / "chat_template.jinja").is_file():
        return (path / "chat_template.jinja").read_text()
    if (path / "chat_template.json").is_file():
        try:
            return json.loads((path / "chat_template.json").read_text())["chat_template"]
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{path / 'chat_template.json'} has no chat_template: {exc}") from exc
    log.warning("%s has no chat template; using Qwen2.5-VL's", path)
    return QWEN25VL_CHAT_TEMPLATE


def load_qwen_processor(path: str | Path):
    """The Qwen2.5-VL processor of a checkpoint directory, without torchvision.

    Args:
        path: a Hugging Face Qwen2.5-VL checkpoint directory (tokenizer files and
            ``preprocessor_config.json``).

    Returns:
        A ``Qwen2_5_VLProcessor`` (subclass ``SegZeroQwenProcessor``) with ``tokenizer``
        (``Qwen2Tokenizer``), ``image_processor`` (``Qwen2VLImageProcessorPil``), no video processor and
        the checkpoint's chat template. ``processor(images=..., text=...)``, ``apply_chat_template``
        and ``save_pretrained`` work as with ``AutoProcessor``.
    """
    path = _checkpoint_dir(path, needs=("tokenizer_config.json", "preprocessor_config.json"))
    _import_transformers()
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(str(path))
    cls = processor_class()
    return cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=None,
        chat_template=_chat_template(path, tokenizer),
    )


def _torch_dtype(dtype):
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise InputError(f"unknown dtype {dtype!r}", hint=f"use one of {', '.join(_DTYPES)}")
    return "auto" if dtype == "auto" else getattr(torch, dtype)


def load_qwen_model(
    path: str | Path, dtype: Any = "float32", *, device: str = "cpu", attn_implementation: str | None = None
):
    """The ``Qwen2_5_VLForConditionalGeneration`` of a checkpoint directory, in eval mode.

    Args:
        path: a Hugging Face Qwen2.5-VL checkpoint directory.
        dtype: ``"float32"`` (default), ``"bfloat16"``, ``"float16"``, ``"auto"`` (the checkpoint's) or a
            ``torch.dtype``.
        device: where to put the weights (``"cpu"``, ``"cuda"``, ...).
        attn_implementation: e.g. ``"sdpa"`` or ``"eager"``; None lets transformers choose.
    """
    path = _checkpoint_dir(path, needs=("config.json",))
    try:
        config = json.loads((path / "config.json").read_text())
    except ValueError as exc:
        raise CheckpointError(f"{path / 'config.json'} is not valid JSON: {exc}") from exc
    if config.get("model_type") != "qwen2_5_vl":
        raise CheckpointError(
            f"{path} holds a {config.get('model_type')!r} model, not a Qwen2.5-VL one (model_type 'qwen2_5_vl')",
            hint="Seg-Zero reasoners are Qwen2.5-VL checkpoints (e.g. Ricky06662/Seg-Zero-7B)",
        )
    _import_transformers()
    from transformers import Qwen2_5_VLForConditionalGeneration

    kwargs: dict[str, Any] = {"dtype": _torch_dtype(dtype)}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(path), **kwargs)
    return model.to(device).eval()
