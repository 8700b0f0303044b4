"""The reasoner part of the engine-directory contract: graph names, tensor names, typed settings.

Written by the exporter (``segzero-edge export reasoner``) and read by the runtime; defined here once.

Graphs (batch 1; ``seq`` new tokens, ``past`` cached tokens, ``total = past + seq``)::

    reasoner.vision   (reasoner/vision.onnx)
        pixel_values              float32 [num_patches, 3*T*P*P]    (``preprocess.py``)
        -> image_embeds           float32 [num_image_tokens, hidden]
    reasoner.decoder  (reasoner/decoder.onnx + decoder.onnx.data)
        inputs_embeds             float32 [1, seq, hidden]          token (and image) embeddings
        attention_mask            int64   [1, total]                1 = attend, 0 = padding
        position_ids              int64   [3, 1, seq]               M-RoPE rows (temporal, height, width)
        past_key_values.{i}.key   float32 [1, kv_heads, past, head_dim]   (i = 0 .. layers-1; also .value)
        -> logits                 float32 [1, vocab]                of the last input position only
        -> present.{i}.key        float32 [1, kv_heads, total, head_dim]  (also .value)
        -> hidden_states          float32 [1, seq, hidden]          LENS engines only (``decoder["hidden_states"]``):
                                                                    the final RMSNorm's output, i.e. the LM head's input

The token embedding table is ``reasoner/embed_tokens.npy`` ``[vocab, hidden]``. The runtime starts every KV
cache with one placeholder slot hidden by ``attention_mask`` (0), so ``past`` is never 0 (TensorRT profiles
need dims >= 1); position ids do not count it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from ..answer.contract import AnswerSettings
from ..errors import EngineIncompatibleError, InputError
from ..manifest import GraphSpec, Manifest, TensorSpec
from ..prompt import user_text
from .preprocess import PreprocessConfig

#: Version of the ``components["reasoner"]`` settings; the runtime refuses another.
REASONER_FORMAT = 1

COMPONENT = "reasoner"
VISION = "reasoner.vision"
DECODER = "reasoner.decoder"
VISION_FILE = "reasoner/vision.onnx"
DECODER_FILE = "reasoner/decoder.onnx"
EMBEDDINGS_FILE = "reasoner/embed_tokens.npy"
SETTINGS_FILE = "reasoner/reasoner.json"

PIXEL_VALUES = "pixel_values"
IMAGE_EMBEDS = "image_embeds"
INPUTS_EMBEDS = "inputs_embeds"
ATTENTION_MASK = "attention_mask"
POSITION_IDS = "position_ids"
LOGITS = "logits"
HIDDEN_STATES = "hidden_states"
KV_KINDS = ("key", "value")
#: Named dynamic dims of the decoder graph.
SEQ, PAST, TOTAL = "seq", "past", "total"


def past_name(layer: int, kind: str) -> str:
    """Decoder input of layer ``layer``'s cached keys (``kind="key"``) or values (``"value"``)."""
    return f"past_key_values.{layer}.{kind}"


def present_name(layer: int, kind: str) -> str:
    """Decoder output of layer ``layer``'s keys or values after this step."""
    return f"present.{layer}.{kind}"


def kv_names(num_layers: int) -> tuple[list[str], list[str]]:
    """``(past inputs, present outputs)`` in graph order: layer by layer, key before value."""
    past = [past_name(i, k) for i in range(num_layers) for k in KV_KINDS]
    present = [present_name(i, k) for i in range(num_layers) for k in KV_KINDS]
    return past, present


def _invalid(message: str) -> EngineIncompatibleError:
    return EngineIncompatibleError(
        f"invalid reasoner settings in the manifest: {message}", hint="re-export the reasoner with this segzero-edge"
    )


@dataclass(frozen=True)
class TextSettings:
    """Shapes of the language model (the decoder graph).

    Attributes:
        hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim, vocab_size: as in the
            checkpoint's config (``head_dim = hidden_size // num_heads``; ``vocab_size`` = logits width).
        rms_norm_eps, rope_theta: norm epsilon and RoPE base.
        mrope_section: rotary dims (in pairs) taken from the temporal, height and width rows;
            ``2 * sum == head_dim``.
        tie_word_embeddings: the LM head reuses the token embedding table.
    """

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    rms_norm_eps: float
    rope_theta: float
    mrope_section: tuple[int, int, int]
    tie_word_embeddings: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "mrope_section", tuple(int(v) for v in self.mrope_section))
        if self.num_heads % self.num_kv_heads or self.head_dim * self.num_heads != self.hidden_size:
            raise _invalid(
                f"inconsistent attention shape: hidden {self.hidden_size}, heads {self.num_heads}, "
                f"kv heads {self.num_kv_heads}, head_dim {self.head_dim}"
            )
        if 2 * sum(self.mrope_section) != self.head_dim:
            raise _invalid(f"mrope_section {list(self.mrope_section)} does not match head_dim {self.head_dim}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TextSettings:
        try:
            return cls(**{f.name: data[f.name] for f in fields(cls)})
        except (KeyError, TypeError) as exc:
            raise _invalid(f"text shape incomplete: {exc}") from exc


@dataclass(frozen=True)
class EmbeddingsSpec:
    """The token embedding table: ``file`` (relative path), ``dtype`` and ``shape`` ``(vocab, hidden)``."""

    file: str
    dtype: str
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ReasonerSettings:
    """``manifest.components["reasoner"]``: everything the runtime needs besides the graphs.

    Attributes:
        model_type: ``"qwen2_5_vl"``.
        prompt_version: ``segzero_edge.prompt.PROMPT_VERSION`` at export.
        weights: the decoder's precision name (``"fp32"``, ``"fp16"``, ``"int8"``, ``"int4"``).
        precision: the exporter's quantization record (layers, block size, LM head).
        preprocess: the image preprocessing (its ``input_size`` is the model input).
        text: the language model's shapes.
        token_ids: ids of the special tokens (``image_pad``, ``vision_start``, ``im_end``, ...).
        eos_token_ids: ids that end a generation.
        answer: how the answers are read (grammar, coordinate frame).
        embeddings: the token embedding table.
        files: engine files by role (``tokenizer``, ``tokenizer_config``, ``preprocessor_config``, ...).
        pad_token_id, bos_token_id: from the checkpoint's generation config.
        generation_defaults: the checkpoint's sampling defaults (informational).
        decoder: how the decoder graph was written (``logits``: last position, ``weight_bytes``,
            ``hidden_states``: true when it also returns the post-norm hidden states...).
        prompt_template: the family's prompt template name when it has several (LENS: ``grounding`` or
            ``cot``, ``segzero_edge.prompt.LENS_TEMPLATES``); None otherwise.
        format: ``REASONER_FORMAT``.
    """

    model_type: str
    prompt_version: str
    weights: str
    preprocess: PreprocessConfig
    text: TextSettings
    token_ids: Mapping[str, int]
    eos_token_ids: tuple[int, ...]
    answer: AnswerSettings
    embeddings: EmbeddingsSpec
    files: Mapping[str, str]
    precision: Mapping[str, Any] = field(default_factory=dict)
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    generation_defaults: Mapping[str, Any] = field(default_factory=dict)
    decoder: Mapping[str, Any] = field(default_factory=dict)
    prompt_template: str | None = None
    format: int = REASONER_FORMAT

    def __post_init__(self) -> None:
        if self.format != REASONER_FORMAT:
            raise EngineIncompatibleError(
                f"reasoner settings format {self.format!r} is not {REASONER_FORMAT}",
                hint="re-export the reasoner with this segzero-edge",
            )
        object.__setattr__(self, "eos_token_ids", tuple(int(e) for e in self.eos_token_ids))
        for name in ("token_ids", "files", "precision", "generation_defaults", "decoder"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        if "image_pad" not in self.token_ids:
            raise _invalid("token_ids has no image_pad")
        if "tokenizer" not in self.files:
            raise _invalid("files has no tokenizer")
        if self.embeddings.shape[1] != self.text.hidden_size:
            raise _invalid(f"embeddings {list(self.embeddings.shape)} do not match hidden {self.text.hidden_size}")
        try:
            user_text("q", self.family, template=self.prompt_template)
        except InputError as exc:
            raise _invalid(f"prompt_template {self.prompt_template!r}: {exc}") from None

    @property
    def hidden_states(self) -> bool:
        """True when the decoder graph also returns ``hidden_states`` (the LENS mask pass needs them)."""
        return bool(self.decoder.get(HIDDEN_STATES, False))

    @property
    def family(self) -> str:
        """The model family (``segzero_edge.prompt.FAMILIES``): it chooses the prompt, the answer grammar
        and constraint, and the SAM2 prompting. Engines that record none are ``"seg_zero"``."""
        return self.answer.grammar

    @property
    def input_size(self) -> int:
        """The square model input in pixels (840 for Seg-Zero)."""
        return self.preprocess.input_size

    @property
    def num_image_tokens(self) -> int:
        return self.preprocess.num_image_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "model_type": self.model_type,
            "family": self.family,
            "prompt_version": self.prompt_version,
            "weights": self.weights,
            "precision": dict(self.precision),
            "input_size": self.input_size,
            "num_image_tokens": self.num_image_tokens,
            "grid_thw": list(self.preprocess.grid_thw),
            "preprocess": self.preprocess.to_dict(),
            "text": self.text.to_dict(),
            "token_ids": dict(self.token_ids),
            "eos_token_ids": list(self.eos_token_ids),
            "answer": self.answer.to_dict(),
            "pad_token_id": self.pad_token_id,
            "bos_token_id": self.bos_token_id,
            "generation_defaults": dict(self.generation_defaults),
            "files": dict(self.files),
            "embeddings": self.embeddings.to_dict(),
            "decoder": dict(self.decoder),
        } | ({"prompt_template": self.prompt_template} if self.prompt_template is not None else {})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ReasonerSettings:
        """Parse the manifest's reasoner settings (``input_size``, ``num_image_tokens`` and ``grid_thw`` are
        derived from ``preprocess`` and checked against it)."""
        if data.get("format") != REASONER_FORMAT:
            raise EngineIncompatibleError(
                f"reasoner settings format {data.get('format')!r} is not {REASONER_FORMAT}",
                hint="re-export the reasoner with this segzero-edge",
            )
        try:
            preprocess = PreprocessConfig.from_dict(data["preprocess"])
            emb = data["embeddings"]
            settings = cls(
                model_type=str(data["model_type"]),
                prompt_version=str(data["prompt_version"]),
                weights=str(data["weights"]),
                preprocess=preprocess,
                text=TextSettings.from_mapping(data["text"]),
                token_ids={str(k): int(v) for k, v in data["token_ids"].items()},
                eos_token_ids=tuple(data.get("eos_token_ids", ())),
                answer=AnswerSettings.from_reasoner(data),
                embeddings=EmbeddingsSpec(str(emb["file"]), str(emb["dtype"]), tuple(emb["shape"])),
                files={str(k): str(v) for k, v in data["files"].items()},
                precision=data.get("precision", {}),
                pad_token_id=data.get("pad_token_id"),
                bos_token_id=data.get("bos_token_id"),
                generation_defaults=data.get("generation_defaults", {}),
                decoder=data.get("decoder", {}),
                prompt_template=data.get("prompt_template"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _invalid(f"{type(exc).__name__}: {exc}") from exc
        if "family" in data and data["family"] != settings.family:
            raise _invalid(f"family {data['family']!r} does not match the answer grammar {settings.family!r}")
        for key, derived in (("input_size", settings.input_size), ("num_image_tokens", settings.num_image_tokens)):
            if key in data and int(data[key]) != derived:
                raise _invalid(f"{key} {data[key]} does not match the preprocessing ({derived})")
        return settings


def vision_spec(preprocess: PreprocessConfig, hidden_size: int, external_data: tuple[str, ...] = ()) -> GraphSpec:
    """The ``reasoner.vision`` entry of the manifest."""
    return GraphSpec(
        file=VISION_FILE,
        inputs=(TensorSpec(PIXEL_VALUES, "float32", (preprocess.num_patches, preprocess.patch_dim)),),
        outputs=(TensorSpec(IMAGE_EMBEDS, "float32", (preprocess.num_image_tokens, hidden_size)),),
        precision="fp32",
        external_data=external_data,
    )


def decoder_io(
    text: TextSettings, *, hidden_states: bool = False
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The decoder graph's ``(inputs, outputs)`` with named dynamic dims, in graph order (``hidden_states``:
    with the post-norm hidden states of every input position as the last output)."""
    kv = (1, text.num_kv_heads)
    inputs = [
        TensorSpec(INPUTS_EMBEDS, "float32", (1, SEQ, text.hidden_size)),
        TensorSpec(ATTENTION_MASK, "int64", (1, TOTAL)),
        TensorSpec(POSITION_IDS, "int64", (3, 1, SEQ)),
    ]
    outputs = [TensorSpec(LOGITS, "float32", (1, text.vocab_size))]
    for i in range(text.num_layers):
        for kind in KV_KINDS:
            inputs.append(TensorSpec(past_name(i, kind), "float32", (*kv, PAST, text.head_dim)))
            outputs.append(TensorSpec(present_name(i, kind), "float32", (*kv, TOTAL, text.head_dim)))
    if hidden_states:
        outputs.append(TensorSpec(HIDDEN_STATES, "float32", (1, SEQ, text.hidden_size)))
    return tuple(inputs), tuple(outputs)


def decoder_spec(
    text: TextSettings,
    *,
    precision: str,
    quantization: Mapping[str, Any],
    profiles: Mapping[str, tuple[int, int, int]],
    external_data: tuple[str, ...],
    hidden_states: bool = False,
) -> GraphSpec:
    """The ``reasoner.decoder`` entry of the manifest; ``profiles`` gives (min, opt, max) of seq, past, total."""
    inputs, outputs = decoder_io(text, hidden_states=hidden_states)
    return GraphSpec(
        file=DECODER_FILE,
        inputs=inputs,
        outputs=outputs,
        precision=precision,
        dynamic_dims=dict(profiles),
        quantization=dict(quantization),
        external_data=external_data,
    )


def check_graphs(manifest: Manifest, settings: ReasonerSettings) -> tuple[GraphSpec, GraphSpec]:
    """The vision and decoder specs, after checking they carry the names and shapes this runtime binds.

    Raises:
        ManifestError: the engine has no reasoner graphs.
        EngineIncompatibleError: the graphs' inputs/outputs are not the ones of this contract.
    """
    vision, decoder = manifest.graph(VISION), manifest.graph(DECODER)
    inputs, outputs = decoder_io(settings.text, hidden_states=settings.hidden_states)
    for name, spec, want_in, want_out in (
        (VISION, vision, (PIXEL_VALUES,), (IMAGE_EMBEDS,)),
        (DECODER, decoder, tuple(t.name for t in inputs), tuple(t.name for t in outputs)),
    ):
        got_in, got_out = tuple(t.name for t in spec.inputs), tuple(t.name for t in spec.outputs)
        if set(got_in) != set(want_in) or set(got_out) != set(want_out):
            raise EngineIncompatibleError(
                f"graph {name} has inputs {got_in} and outputs {got_out}; this runtime needs {want_in} -> {want_out}",
                hint="re-export the reasoner with this segzero-edge version",
            )
    if vision.output(IMAGE_EMBEDS).shape[0] != settings.num_image_tokens:
        raise EngineIncompatibleError(
            f"graph {VISION} returns {vision.output(IMAGE_EMBEDS).shape[0]} embeddings, the settings say "
            f"{settings.num_image_tokens}",
            hint="re-export the reasoner with this segzero-edge version",
        )
    return vision, decoder
