"""Random-weight Qwen2.5-VL checkpoints in the Hugging Face format, for tests, the demo and benchmarks.

The directory is what a real Qwen2.5-VL (or Seg-Zero) checkpoint holds, written by transformers 5:

    config.json              Qwen2_5_VLConfig (``rope_parameters`` with ``mrope_section``)
    generation_config.json   bos/pad ``<|endoftext|>``, eos [``<|im_end|>``, ``<|endoftext|>``]
    model.safetensors        seeded random weights
    tokenizer.json           an offline byte-level BPE with every Qwen2.5-VL added token (tokenizer.py)
    tokenizer_config.json    Qwen2Tokenizer, eos ``<|im_end|>``, pad ``<|endoftext|>``, no BOS
    chat_template.jinja      Qwen2.5-VL's chat template (segzero_edge.reference.qwen.QWEN25VL_CHAT_TEMPLATE)
    preprocessor_config.json Qwen2VLImageProcessor settings, as in the official repositories
    segzero_edge.json        the prompt contract (prompt version, model input size)

Shapes come from ``QWEN_SIZES``: ``"tiny"`` for tests (0.27M parameters, ~1 MB; about 0.02 s per
build once transformers' model code is imported, ~2 s for the first build in a process), ``"3b"`` and
``"7b"`` with the real Qwen2.5-VL shapes for benchmarks, usually with fewer text layers (``num_layers``)
and vision blocks (``vision_depth``). Load the result with
``segzero_edge.reference.qwen.load_qwen_model`` / ``load_qwen_processor``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segzero_edge.errors import InputError
from segzero_edge.files import exclusive, publish_modes, remove_stale, replaceable_dir, staging_dir, writable_dir
from segzero_edge.prompt import validate_input_size, write_checkpoint_meta

from .tokenizer import DEFAULT_BPE_VOCAB_SIZE, build_qwen_tokenizer, qwen_token_ids, save_qwen_tokenizer

log = logging.getLogger(__name__)

#: Qwen2-VL / Qwen2.5-VL image normalization (OpenAI CLIP mean and std).
QWEN_IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
QWEN_IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
#: The image processor limits of the official checkpoints (and of Seg-Zero training).
QWEN_MIN_PIXELS = 3136
QWEN_MAX_PIXELS = 12845056

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class QwenSize:
    """The shapes of one Qwen2.5-VL variant.

    ``vocab_size=None`` means "the tokenizer's size" (tiny models); real sizes keep Qwen's padded
    embedding tables (151936 / 152064 rows), larger than any tokenizer, as the real checkpoints do.
    ``head_dim`` is ``hidden_size // num_heads``; ``sum(mrope_section) * 2`` must equal it.
    """

    name: str
    # text model
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    mrope_section: tuple[int, int, int]
    vocab_size: int | None
    tie_word_embeddings: bool
    rope_theta: float = 1e6
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 128000
    max_window_layers: int = 28
    # vision tower
    vision_depth: int = 32
    vision_hidden_size: int = 1280
    vision_intermediate_size: int = 3420
    vision_num_heads: int = 16
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    window_size: int = 112
    fullatt_block_indexes: tuple[int, ...] = (7, 15, 23, 31)
    tokens_per_second: int = 2
    # the model input size written to segzero_edge.json (square, pixels)
    input_size: int = 840

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise InputError(
                f"{self.name}: hidden {self.hidden_size}, heads {self.num_heads} and "
                f"KV heads {self.num_kv_heads} do not divide"
            )
        if 2 * sum(self.mrope_section) != self.head_dim:
            raise InputError(
                f"{self.name}: 2 * sum(mrope_section {list(self.mrope_section)}) must equal head_dim {self.head_dim}"
            )
        if self.vision_hidden_size % self.vision_num_heads:
            raise InputError(
                f"{self.name}: vision hidden {self.vision_hidden_size} is not a multiple of "
                f"{self.vision_num_heads} heads"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


#: The shapes ``build_tiny_qwen25vl`` knows. "3b" and "7b" are the real Qwen2.5-VL-3B/7B-Instruct shapes.
QWEN_SIZES: types.MappingProxyType[str, QwenSize] = types.MappingProxyType(
    {
        "tiny": QwenSize(
            name="tiny",
            hidden_size=64,
            intermediate_size=128,
            num_layers=2,
            num_heads=4,
            num_kv_heads=2,
            mrope_section=(2, 3, 3),
            vocab_size=None,
            tie_word_embeddings=False,
            max_window_layers=2,
            vision_depth=2,
            vision_hidden_size=32,
            vision_intermediate_size=64,
            vision_num_heads=2,
            window_size=56,
            fullatt_block_indexes=(1,),
            input_size=112,
        ),
        "3b": QwenSize(
            name="3b",
            hidden_size=2048,
            intermediate_size=11008,
            num_layers=36,
            num_heads=16,
            num_kv_heads=2,
            mrope_section=(16, 24, 24),
            vocab_size=151936,
            tie_word_embeddings=True,
            max_window_layers=70,
        ),
        "7b": QwenSize(
            name="7b",
            hidden_size=3584,
            intermediate_size=18944,
            num_layers=28,
            num_heads=28,
            num_kv_heads=4,
            mrope_section=(16, 24, 24),
            vocab_size=152064,
            tie_word_embeddings=False,
            max_window_layers=28,
        ),
    }
)


def _resolve_size(size: str | QwenSize, num_layers: int | None, vision_depth: int | None) -> QwenSize:
    if isinstance(size, QwenSize):
        spec = size
    elif isinstance(size, str) and size in QWEN_SIZES:
        spec = QWEN_SIZES[size]
    else:
        raise InputError(
            f"unknown Qwen2.5-VL size {size!r}", hint=f"use one of {', '.join(QWEN_SIZES)} (or pass a QwenSize)"
        )
    for name, value in (("num_layers", num_layers), ("vision_depth", vision_depth)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(f"{name} must be an int >= 1, got {value!r}")
    changes = {}
    if num_layers is not None:
        changes["num_layers"] = num_layers
    if vision_depth is not None and vision_depth != spec.vision_depth:
        # Keep the real full-attention blocks that still exist; with none left, make the last block
        # global so the tower still mixes windowed and full attention like the real one.
        kept = tuple(i for i in spec.fullatt_block_indexes if i < vision_depth) or (vision_depth - 1,)
        changes.update(vision_depth=vision_depth, fullatt_block_indexes=kept)
    return dataclasses.replace(spec, **changes) if changes else spec


def _validate_input_size(input_size: int) -> int:
    validate_input_size(input_size)
    if not QWEN_MIN_PIXELS <= input_size * input_size <= QWEN_MAX_PIXELS:
        raise InputError(
            f"input size {input_size} is outside the image processor's pixel range "
            f"[{QWEN_MIN_PIXELS}, {QWEN_MAX_PIXELS}]: the processor would resize the image again",
            hint="use a multiple of 28 between 56 and 3584",
        )
    return input_size


def qwen_config(spec: QwenSize, token_ids: dict[str, int], vocab_size: int, dtype: str = "float32"):
    """The ``Qwen2_5_VLConfig`` of ``spec`` with ``token_ids`` from the tokenizer (see ``qwen_token_ids``)."""
    from transformers import Qwen2_5_VLConfig

    text_config = dict(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        hidden_act="silu",
        max_position_embeddings=spec.max_position_embeddings,
        max_window_layers=spec.max_window_layers,
        rms_norm_eps=spec.rms_norm_eps,
        use_sliding_window=False,
        sliding_window=32768,
        attention_dropout=0.0,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": spec.rope_theta,
            "mrope_section": list(spec.mrope_section),
        },
        bos_token_id=token_ids["bos_token_id"],
        eos_token_id=token_ids["eos_token_id"],
        pad_token_id=token_ids["pad_token_id"],
        tie_word_embeddings=spec.tie_word_embeddings,
        dtype=dtype,
    )
    vision_config = dict(
        depth=spec.vision_depth,
        hidden_size=spec.vision_hidden_size,
        intermediate_size=spec.vision_intermediate_size,
        num_heads=spec.vision_num_heads,
        hidden_act="silu",
        in_channels=3,
        out_hidden_size=spec.hidden_size,
        patch_size=spec.patch_size,
        spatial_merge_size=spec.spatial_merge_size,
        temporal_patch_size=spec.temporal_patch_size,
        window_size=spec.window_size,
        fullatt_block_indexes=list(spec.fullatt_block_indexes),
        tokens_per_second=spec.tokens_per_second,
        dtype=dtype,
    )
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=token_ids["image_token_id"],
        video_token_id=token_ids["video_token_id"],
        vision_start_token_id=token_ids["vision_start_token_id"],
        vision_end_token_id=token_ids["vision_end_token_id"],
        tie_word_embeddings=spec.tie_word_embeddings,
        bos_token_id=token_ids["bos_token_id"],
        eos_token_id=token_ids["eos_token_id"],
        pad_token_id=token_ids["pad_token_id"],
        dtype=dtype,
    )


def qwen_preprocessor_config(spec: QwenSize) -> dict:
    """``preprocessor_config.json`` as the official Qwen2.5-VL repositories ship it."""
    return {
        "min_pixels": QWEN_MIN_PIXELS,
        "max_pixels": QWEN_MAX_PIXELS,
        "patch_size": spec.patch_size,
        "temporal_patch_size": spec.temporal_patch_size,
        "merge_size": spec.spatial_merge_size,
        "image_mean": list(QWEN_IMAGE_MEAN),
        "image_std": list(QWEN_IMAGE_STD),
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor",
    }


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} exists and is not a directory", hint="choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise InputError(
                f"{out_dir} is not empty: refusing to write a checkpoint over it",
                hint="choose an empty or new directory, or pass overwrite=True (--overwrite) to replace it",
            )
        replaceable_dir(out_dir)
        if not (out_dir / "config.json").is_file():
            raise InputError(
                f"{out_dir} is not a checkpoint directory (no config.json): --overwrite only replaces checkpoints",
                hint="choose an empty or new directory",
            )
    writable_dir(out_dir.parent)


def _publish(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` directory to ``out_dir`` (replacing it) with renames only."""
    old = None
    with exclusive(out_dir):
        if out_dir.exists():
            if any(out_dir.iterdir()):
                _prepare_out_dir(out_dir, overwrite)  # filled while we were building?
                old = staging_dir(out_dir, "old")
                os.rmdir(old)
                out_dir.rename(old)
            else:
                out_dir.rmdir()
        try:
            tmp.rename(out_dir)
        except BaseException:
            if old is not None:
                old.rename(out_dir)
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _save_quietly(model, out_dir: Path) -> None:
    """``model.save_pretrained`` without transformers' per-shard progress bar (tests build many models)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(str(out_dir))
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def build_tiny_qwen25vl(
    out_dir: str | Path,
    size: str | QwenSize = "tiny",
    *,
    num_layers: int | None = None,
    vision_depth: int | None = None,
    input_size: int | None = None,
    seed: int = 0,
    dtype: str = "float32",
    overwrite: bool = False,
    tokenizer_corpus: Sequence[str] | None = None,
    bpe_vocab_size: int | None = None,
) -> Path:
    """Write a random-weight Qwen2.5-VL checkpoint directory (Hugging Face format) to ``out_dir``.

    Args:
        out_dir: the checkpoint directory; it must not exist or be empty unless ``overwrite``. The files
            are written to a temporary directory next to it and renamed into place at the end, so
            ``out_dir`` is never left half written.
        size: ``"tiny"`` (tests), ``"3b"`` or ``"7b"`` (real shapes) from ``QWEN_SIZES``, or a ``QwenSize``.
        num_layers: number of text decoder layers instead of the size's (e.g. 2 for a 3B-shaped benchmark).
        vision_depth: number of vision blocks instead of the size's. The real full-attention blocks below
            it are kept; if none is, the last block is the full-attention one.
        input_size: square model input size in pixels (multiple of 28, 56..3584), recorded in
            ``segzero_edge.json``. Default: the size's (112 for tiny: 16 image tokens; 840 otherwise).
        seed: torch seed of the weights. The same arguments give byte-identical files.
            The caller's global torch RNG state is left as it was.
        dtype: weight dtype, ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        overwrite: replace a non-empty ``out_dir``.
        tokenizer_corpus: texts to train the offline BPE tokenizer on (default: the built-in Seg-Zero corpus).
        bpe_vocab_size: BPE vocabulary bound of that tokenizer (default ``DEFAULT_BPE_VOCAB_SIZE``).

    Returns:
        ``out_dir`` as a ``Path``.

    Raises:
        InputError: unknown size, bad layer counts, an input size that is not a multiple of 28,
            an unknown dtype, or a non-empty ``out_dir`` without ``overwrite``.
    """
    spec = _resolve_size(size, num_layers, vision_depth)
    input_size = _validate_input_size(spec.input_size if input_size is None else input_size)
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}", hint=f"use one of {', '.join(DTYPES)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an int, got {seed!r}")
    out_dir = Path(out_dir).expanduser().absolute()
    _prepare_out_dir(out_dir, overwrite)

    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration
    from transformers import initialization as hf_init

    start = time.perf_counter()
    tokenizer = build_qwen_tokenizer(bpe_vocab_size or DEFAULT_BPE_VOCAB_SIZE, tokenizer_corpus)
    ids = qwen_token_ids(tokenizer)
    vocab_size = spec.vocab_size if spec.vocab_size is not None else tokenizer.get_vocab_size()
    if vocab_size < tokenizer.get_vocab_size():
        raise InputError(
            f"{spec.name}: vocab_size {vocab_size} is smaller than the tokenizer ({tokenizer.get_vocab_size()} tokens)"
        )
    config = qwen_config(spec, ids, vocab_size, dtype)

    # Build without torch's default init (a wasted pass of uniform_ over every Linear: ~1/3 of the time
    # for 3b shapes), then run transformers' own init once, under the seed.
    with hf_init.no_init_weights():
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=getattr(torch, dtype))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.init_weights()
    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos_token_id"],
        eos_token_id=[ids["eos_token_id"], ids["pad_token_id"]],
        pad_token_id=ids["pad_token_id"],
    )

    remove_stale(out_dir.parent)
    tmp = staging_dir(out_dir, "tmp")
    try:
        _save_quietly(model, tmp)
        save_qwen_tokenizer(tokenizer, tmp)
        preprocessor = json.dumps(qwen_preprocessor_config(spec), indent=2) + "\n"
        (tmp / "preprocessor_config.json").write_text(preprocessor)
        write_checkpoint_meta(tmp, input_size=input_size)
        publish_modes(tmp)  # mkdtemp and safetensors make them private; a checkpoint is not
        _publish(tmp, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "wrote random Qwen2.5-VL checkpoint %s (%s: %d text layers, %d vision blocks, %.2fM params, "
        "vocab %d, input %d, %s, seed %d) in %.2f s",
        out_dir,
        spec.name,
        spec.num_layers,
        spec.vision_depth,
        n_params / 1e6,
        vocab_size,
        input_size,
        dtype,
        seed,
        time.perf_counter() - start,
    )
    return out_dir
