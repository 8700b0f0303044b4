"""Reading a Qwen2.5-VL checkpoint directory without loading the model.

``inspect_checkpoint`` checks that a Hugging Face directory is a Qwen2.5-VL checkpoint with everything the
export needs (config, weights, tokenizer, image processor settings) and reads the shapes. ``WeightReader``
streams single tensors out of the safetensors shards, so the exporter holds one weight at a time.

Weight names are normalised to ``lm.<...>`` (language model: ``lm.layers.0.self_attn.q_proj.weight``,
``lm.embed_tokens.weight``, ``lm.norm.weight``), ``lm_head.weight`` and ``visual.<...>``, whatever layout
the checkpoint uses: transformers >= 5 (``model.language_model.*``, ``model.visual.*``) or the official
Qwen2.5-VL / Seg-Zero releases (``model.*``, ``visual.*``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.errors import CheckpointError, InputError
from segzero_edge.prompt import SEG_ZERO, check_family, read_checkpoint_meta
from segzero_edge.reasoner.contract import TextSettings
from segzero_edge.reasoner.preprocess import PreprocessConfig

log = logging.getLogger(__name__)

#: Files a checkpoint must have for the runtime's tokenizer and prompt (tokenizer.json is what the
#: ``tokenizers`` library reads; tokenizer_config.json names the special tokens).
REQUIRED_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
#: Optional files copied when present. The engine keeps only what the runtime reads (tokenizer.json) and the
#: configs its settings were derived from; the chat template is not copied: the runtime renders the prompt
#: contract (``segzero_edge.prompt.render_chat``), and the export checks the checkpoint's template against it.
OPTIONAL_FILES = ("generation_config.json",)
SUPPORTED_MODEL_TYPES = ("qwen2_5_vl",)
#: Vision-config keys only Qwen2.5-VL has: a ``qwen2_vl`` config that carries them describes a Qwen2.5-VL
#: model (LENS saves its Qwen2.5-VL-3B checkpoints with a ``Qwen2VLConfig`` subclass).
QWEN25_VISION_KEYS = ("fullatt_block_indexes", "window_size", "out_hidden_size")


@dataclass(frozen=True)
class QwenCheckpoint:
    """What the exporter knows about a checkpoint directory (``inspect_checkpoint``).

    Attributes:
        path: the directory.
        config: the parsed ``transformers`` ``Qwen2_5_VLConfig``.
        text: the language model's shapes.
        preprocess: the image preprocessing (model input size from ``segzero_edge.json``, default 840).
        token_ids: ids of the special tokens the runtime needs (``image_pad``, ``vision_start``, ...).
        generation: ``generation_config.json`` (empty when absent).
        files: the tokenizer/template/processor files to copy, relative names.
        weight_files: the safetensors shards.
        family: the model family (``segzero_edge.prompt.FAMILIES``): prompt, answer grammar, SAM2 prompting.
    """

    path: Path
    config: Any
    text: TextSettings
    preprocess: PreprocessConfig
    token_ids: dict[str, int]
    generation: dict[str, Any]
    files: tuple[str, ...]
    weight_files: tuple[Path, ...] = field(default=())
    family: str = SEG_ZERO


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return data


def inspect_checkpoint(path: str | Path, *, input_size: int | None = None, family: str | None = None) -> QwenCheckpoint:
    """Check ``path`` is a complete Qwen2.5-VL checkpoint and read its shapes and settings.

    Args:
        path: a Hugging Face checkpoint directory (Qwen2.5-VL, Seg-Zero or another fine-tune).
        input_size: the square model input in pixels; default: the checkpoint's ``segzero_edge.json``, else 840.
        family: the model family; default: the checkpoint's ``segzero_edge.json``, else ``"seg_zero"``
            (official VisionReasoner checkpoints record none: pass ``"vision_reasoner"``).

    Raises:
        CheckpointError: not a directory, no/invalid ``config.json``, another model type, no weights,
            a missing tokenizer or preprocessor file (the message names the file).
        InputError: an unsupported input size.
    """
    root = Path(path)
    if not root.is_dir():
        raise CheckpointError(
            f"checkpoint directory {root} does not exist",
            hint="pass a Hugging Face Qwen2.5-VL directory (config.json, *.safetensors, tokenizer)",
        )
    config_path = root / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{config_path} is missing: {root} is not a Hugging Face checkpoint")
    raw = _read_json(config_path)
    model_type = raw.get("model_type")
    vision = raw.get("vision_config") if isinstance(raw.get("vision_config"), dict) else {}
    if model_type == "qwen2_vl" and all(k in vision for k in QWEN25_VISION_KEYS):
        log.info("%s: model_type 'qwen2_vl' with a Qwen2.5-VL vision config: read as Qwen2.5-VL", config_path)
    elif model_type == "qwen2_vl":
        raise CheckpointError(
            f"{config_path}: model_type 'qwen2_vl' is a Qwen2-VL model (its vision_config lacks "
            f"{', '.join(QWEN25_VISION_KEYS)})",
            hint="segzero-edge exports Qwen2.5-VL reasoners (LENS-3B, Seg-Zero, VisionReasoner); Qwen2-VL "
            "models such as LENS-2B are not supported",
        )
    elif model_type not in SUPPORTED_MODEL_TYPES:
        raise CheckpointError(
            f"{config_path}: model_type {model_type!r} is not Qwen2.5-VL (expected 'qwen2_5_vl')",
            hint="export a Qwen2.5-VL checkpoint (Seg-Zero-7B, Qwen2.5-VL-3B/7B-Instruct or a fine-tune of them)",
        )
    for name in REQUIRED_TOKENIZER_FILES:
        if not (root / name).is_file():
            raise CheckpointError(
                f"tokenizer file {root / name} is missing",
                hint="copy the tokenizer files of the base model into the checkpoint directory",
            )
    pre_path = root / "preprocessor_config.json"
    if not pre_path.is_file():
        raise CheckpointError(
            f"image processor settings {pre_path} are missing",
            hint="copy preprocessor_config.json of the base Qwen2.5-VL model into the checkpoint",
        )
    weight_files = tuple(sorted(root.glob("*.safetensors")))
    if not weight_files:
        raise CheckpointError(
            f"no *.safetensors weights in {root}", hint="save the model with save_pretrained(safe_serialization=True)"
        )

    from transformers import Qwen2_5_VLConfig

    try:
        if model_type == "qwen2_vl":
            fixed = {**raw, "model_type": "qwen2_5_vl", "vision_config": {**vision, "model_type": "qwen2_5_vl"}}
            config = Qwen2_5_VLConfig.from_dict(fixed)
        else:
            config = Qwen2_5_VLConfig.from_pretrained(root)
    except Exception as exc:  # transformers raises many types on malformed configs
        raise CheckpointError(f"{config_path} is not a valid Qwen2.5-VL config: {exc}") from exc
    tc = config.text_config
    rope = dict(getattr(tc, "rope_parameters", None) or {})
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", "mrope"):
        raise CheckpointError(f"{config_path}: rope type {rope_type!r} is not supported (only default M-RoPE)")
    head_dim = tc.hidden_size // tc.num_attention_heads
    text = TextSettings(
        hidden_size=tc.hidden_size,
        intermediate_size=tc.intermediate_size,
        num_layers=tc.num_hidden_layers,
        num_heads=tc.num_attention_heads,
        num_kv_heads=tc.num_key_value_heads,
        head_dim=head_dim,
        vocab_size=tc.vocab_size,
        rms_norm_eps=float(tc.rms_norm_eps),
        rope_theta=float(rope["rope_theta"]),
        mrope_section=tuple(int(v) for v in rope.get("mrope_section", (16, 24, 24))),
        tie_word_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
    )
    if getattr(tc, "use_sliding_window", False):
        raise CheckpointError(f"{config_path}: use_sliding_window=true is not supported")

    meta = read_checkpoint_meta(root)
    size = meta["input_size"] if input_size is None else input_size
    family = meta["family"] if family is None else check_family(family)
    try:
        preprocess = PreprocessConfig.from_preprocessor_config(_read_json(pre_path), size)
    except InputError:
        raise
    vc = config.vision_config
    if (preprocess.patch_size, preprocess.merge_size, preprocess.temporal_patch_size) != (
        vc.patch_size,
        vc.spatial_merge_size,
        vc.temporal_patch_size,
    ):
        raise CheckpointError(f"{pre_path} disagrees with config.json on patch/merge/temporal sizes")

    tok_cfg = _read_json(root / "tokenizer_config.json")
    token_ids = _special_token_ids(root, config, tok_cfg)
    generation = _read_json(root / "generation_config.json") if (root / "generation_config.json").is_file() else {}
    files = tuple(
        n for n in (*REQUIRED_TOKENIZER_FILES, "preprocessor_config.json", *OPTIONAL_FILES) if (root / n).is_file()
    )
    return QwenCheckpoint(
        path=root,
        config=config,
        text=text,
        preprocess=preprocess,
        token_ids=token_ids,
        generation=generation,
        files=files,
        weight_files=weight_files,
        family=family,
    )


def _special_token_ids(root: Path, config: Any, tok_cfg: dict) -> dict[str, int]:
    """Ids of the chat/vision special tokens, from tokenizer.json's added tokens (checked against config.json)."""
    tok = _read_json(root / "tokenizer.json")
    added = {t["content"]: int(t["id"]) for t in tok.get("added_tokens", []) if "content" in t}
    vocab = (tok.get("model") or {}).get("vocab") or {}
    wanted = {
        "image_pad": "<|image_pad|>",
        "vision_start": "<|vision_start|>",
        "vision_end": "<|vision_end|>",
        "im_start": "<|im_start|>",
        "im_end": "<|im_end|>",
        "endoftext": "<|endoftext|>",
    }
    ids = {}
    for key, text in wanted.items():
        value = added.get(text, vocab.get(text))
        if value is None:
            raise CheckpointError(f"{root / 'tokenizer.json'} has no token {text!r}: it is not a Qwen2.5-VL tokenizer")
        ids[key] = int(value)
    for key, attr in (
        ("image_pad", "image_token_id"),
        ("vision_start", "vision_start_token_id"),
        ("vision_end", "vision_end_token_id"),
    ):
        cfg_id = getattr(config, attr, None)
        if cfg_id is not None and int(cfg_id) != ids[key]:
            raise CheckpointError(f"config.json {attr}={cfg_id} but tokenizer.json has {wanted[key]} = {ids[key]}")
    if tok_cfg.get("eos_token") not in (None, "<|im_end|>", "<|endoftext|>") and not isinstance(
        tok_cfg.get("eos_token"), dict
    ):
        log.warning("tokenizer_config.json eos_token is %r", tok_cfg.get("eos_token"))
    return ids


#: Top-level tensor prefixes of a LENS checkpoint besides the Qwen2.5-VL ones (reference/other_families.md §1.3).
LENS_PREFIXES = ("connector.", "conv_1d.", "proj_to_sam.", "sam.")


def canonical_weight_name(name: str) -> str | None:
    """Checkpoint tensor name -> ``lm.*`` / ``lm_head.weight`` / ``visual.*`` / ``lens.*`` (LENS's
    ``learnable_query``, ``connector.*``, ``conv_1d.*``, ``proj_to_sam.*``, ``sam.*``), None for unknown names."""
    for prefix, new in (
        ("model.language_model.", "lm."),
        ("model.visual.", "visual."),
        ("visual.", "visual."),
        ("language_model.model.", "lm."),
        ("language_model.lm_head.", "lm_head."),
    ):
        if name.startswith(prefix):
            return new + name[len(prefix) :]
    if name.startswith("lm_head."):
        return name
    if name == "learnable_query" or name.startswith(LENS_PREFIXES):  # LENS's mask head and its SAM2
        return "lens." + name
    if name.startswith("model."):
        return "lm." + name[len("model.") :]
    return None


#: safetensors dtype -> (numpy dtype of the stored bytes, converter to float32)
_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


def _read_safetensors_header(path: Path) -> tuple[int, dict[str, Any]]:
    """``(offset of the data section, header dict)`` of a safetensors file."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n < 1 << 30:
                raise ValueError(f"implausible header length {n}")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read weights {path}: {exc}",
            hint="is the file a complete safetensors shard (not a git-lfs pointer)?",
        ) from exc
    header.pop("__metadata__", None)
    return 8 + n, header


def _widen(raw: np.ndarray, stored: type) -> np.ndarray:
    """A flat float32/float16/bfloat16 (uint16) array as float32. torch converts: numpy's uint16 -> uint32 cast
    and shift took 4.7 s for 136M bfloat16 values on the 2-core machine, torch's ``.float()`` 0.12 s (both exact)."""
    import torch

    if stored is np.float32:
        return raw
    if stored is np.uint16:  # bfloat16: the upper half of a float32
        return torch.from_numpy(raw.view(np.int16)).view(torch.bfloat16).float().numpy()
    if stored is np.float16:
        return torch.from_numpy(raw).float().numpy()
    return raw.astype(np.float32)


class WeightReader:
    """Reads single tensors (as float32 numpy arrays) from a checkpoint's safetensors shards.

    Only the tensor asked for is read, with plain file reads into a fresh array: nothing is memory-mapped,
    so the bytes already read do not stay in the process (a mapped shard's touched pages count in its RSS
    until the mapping goes away, which for a 3B checkpoint is 7.5 GB on top of the fp32 model). The header
    parsing follows the safetensors format: an 8-byte little-endian length, a JSON header with ``dtype``,
    ``shape`` and ``data_offsets`` (relative to the end of the header) per tensor.
    """

    def __init__(self, weight_files: tuple[Path, ...]):
        self._files: list[tuple[Path, int]] = []
        self._where: dict[str, tuple[int, dict[str, Any]]] = {}
        for i, f in enumerate(weight_files):
            base, header = _read_safetensors_header(Path(f))
            self._files.append((Path(f), base))
            for key, info in header.items():
                canon = canonical_weight_name(key)
                if canon is not None:
                    self._where[canon] = (i, info)

    def names(self) -> Iterator[str]:
        return iter(sorted(self._where))

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def _locate(self, name: str) -> tuple[Path, int, dict[str, Any], type]:
        try:
            i, info = self._where[name]
        except KeyError:
            raise CheckpointError(
                f"the checkpoint has no weight {name!r}",
                hint="is it a complete Qwen2.5-VL checkpoint (all safetensors shards present)?",
            ) from None
        path, base = self._files[i]
        stored = _SAFETENSORS_DTYPES.get(info["dtype"])
        if stored is None:
            raise CheckpointError(
                f"{path}: weight {name!r} has dtype {info['dtype']}",
                hint="segzero-edge exports float32, float16 or bfloat16 checkpoints",
            )
        return path, base, info, stored

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of ``name`` (canonical name), from the header alone."""
        return tuple(int(d) for d in self._locate(name)[2]["shape"])

    def get(self, name: str) -> np.ndarray:
        """The tensor ``name`` (canonical name) as a float32 numpy array (a new array, owned by the caller)."""
        path, base, info, stored = self._locate(name)
        begin, end = (int(x) for x in info["data_offsets"])
        shape = tuple(int(d) for d in info["shape"])
        raw = np.empty((end - begin) // np.dtype(stored).itemsize, stored)
        with open(path, "rb") as f:
            f.seek(base + begin)
            if f.readinto(memoryview(raw).cast("B")) != end - begin:
                raise CheckpointError(f"{path} is truncated (weight {name!r})", hint="download the checkpoint again")
        return _widen(raw, stored).reshape(shape)

    def row_block(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of the 2-D tensor ``name`` as float32, in one read."""
        path, base, info, stored = self._locate(name)
        rows, cols = (int(d) for d in info["shape"])
        start, stop = max(0, start), min(rows, stop)
        width = cols * np.dtype(stored).itemsize
        raw = np.empty((stop - start) * cols, stored)
        with open(path, "rb") as f:
            f.seek(base + int(info["data_offsets"][0]) + start * width)
            if f.readinto(memoryview(raw).cast("B")) != raw.nbytes:
                raise CheckpointError(f"{path} is truncated (weight {name!r})", hint="download the checkpoint again")
        return _widen(raw, stored).reshape(stop - start, cols)

    def rows(self, name: str, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` of the 2-D tensor ``name`` as float32 ``[len(ids), cols]``: only those rows are read
        (a token embedding table's rows for one prompt, not the whole table)."""
        path, base, info, stored = self._locate(name)
        rows, cols = (int(d) for d in info["shape"])
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        width = cols * np.dtype(stored).itemsize
        out = np.empty((ids.size, cols), stored)
        begin = base + int(info["data_offsets"][0])
        with open(path, "rb") as f:
            for k, row in enumerate(ids.tolist()):
                if not 0 <= row < rows:
                    raise IndexError(f"row {row} of {name!r}, which has {rows}")
                f.seek(begin + row * width)
                if f.readinto(memoryview(out[k]).cast("B")) != width:
                    raise CheckpointError(
                        f"{path} is truncated (weight {name!r})", hint="download the checkpoint again"
                    )
        return _widen(out.reshape(-1), stored).reshape(ids.size, cols)

    def torch_state(self, prefix: str) -> dict[str, Any]:
        """Every tensor whose canonical name starts with ``prefix`` (prefix removed), as torch tensors (float32)."""
        import torch

        return {
            canon[len(prefix) :]: torch.from_numpy(self.get(canon)) for canon in self._where if canon.startswith(prefix)
        }
