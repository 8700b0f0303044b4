"""The LENS part of the engine-directory contract: graph names, tensor names, typed settings.

Written by ``segzero-edge export lens`` and read by the runtime; defined here once. A LENS engine holds a
``reasoner`` (whose decoder graph also returns ``hidden_states``), a ``sam2`` component exported from the
checkpoint's own SAM2 (``sam.*``: stock image encoder, fine-tuned prompt encoder and mask decoder) and this
``lens`` component::

    lens/queries.npy            float32 [Q, hidden]     the learned context queries (``learnable_query``)
    lens.context   (lens/context.onnx; weight-only variants lens/context_int8.onnx, lens/context_int4.onnx)
        query_hidden            float32 [1, Q, hidden]  post-norm hidden states of the Q query positions
        -> sparse_prompt        float32 [1, 1, D]       one SAM2 prompt token (D = 256)
    lens.mask_decoder  (lens/mask_decoder.onnx; the checkpoint's fine-tuned SAM2 prompt encoder + decoder)
        image_embed, high_res_feats_0, high_res_feats_1   as the sam2 image encoder returns them
        sparse_prompt           float32 [N, S, D]       prompt tokens as given (LENS: S = 1, no padding point);
                                                        the dense prompt is the no-mask embedding, folded in
        -> low_res_masks [N,4,r,r], iou_scores [N,4], object_score_logits [N,1]   (as sam2.mask_decoder)

Host side: SAM2's single-mask choice with its stability fallback (``sam2.host.choose_masks`` mode
``"single"``), the chosen low-res logits upsampled bilinearly straight to the original size, ``> 0``; no
+-32 clamp (LENS's ``postprocess_masks``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import EngineIncompatibleError
from ..manifest import GraphSpec, Manifest, TensorSpec
from ..prompt import LENS_SYSTEM_PROMPT, LENS_TEMPLATES
from ..sam2.contract import DECODER_OUTPUTS, FEATURES, IOU_SCORES, LOW_RES_MASKS, NUM_OBJECTS, OBJECT_SCORE_LOGITS

#: Version of ``components["lens"]``; the runtime refuses another.
LENS_FORMAT = 1

COMPONENT = "lens"
CONTEXT = "lens.context"
MASK_DECODER = "lens.mask_decoder"
SETTINGS_FILE = "lens/lens.json"
QUERIES_FILE = "lens/queries.npy"
MASK_DECODER_FILE = "lens/mask_decoder.onnx"
#: context graph precision -> (graph name, file)
CONTEXT_GRAPHS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "fp32": (CONTEXT, "lens/context.onnx"),
        "int8": ("lens.context_int8", "lens/context_int8.onnx"),
        "int4": ("lens.context_int4", "lens/context_int4.onnx"),
    }
)

QUERY_HIDDEN = "query_hidden"
SPARSE_PROMPT = "sparse_prompt"
PROMPT_TOKENS = "prompt_tokens"
MASK_DECODER_INPUTS = (*FEATURES, SPARSE_PROMPT)
MASK_DECODER_OUTPUTS = DECODER_OUTPUTS


def _invalid(message: str) -> EngineIncompatibleError:
    return EngineIncompatibleError(
        f"invalid lens settings in the manifest: {message}", hint="re-export the engine with `segzero-edge export lens`"
    )


@dataclass(frozen=True)
class LensSettings:
    """``manifest.components["lens"]``.

    Attributes:
        num_queries: Q, the learned queries appended after the answer (64 in every LENS release).
        hidden_size: the reasoner's hidden size (the queries' width).
        prompt_dim: SAM2's prompt width D (256).
        connector_heads, connector_blocks: the connector's attention heads and ViT blocks (16, 4).
        template: the prompt template the reasoner uses (``segzero_edge.prompt.LENS_TEMPLATES``).
        templates: both LENS templates, byte for byte, and ``system_prompt``: recorded so an engine says
            exactly what its reasoner is asked; the runtime refuses an engine whose texts differ from its own.
        context_precisions: the context graph variants present (``fp32``, ``int8``, ``int4``).
        default_context: the variant the runtime runs unless told otherwise.
        queries_file: the learned queries ``[Q, hidden]`` float32.
        mask_mode: ``"single"``: token 0 with SAM2's stability fallback (``multimask_output=False``).
        format: ``LENS_FORMAT``.
    """

    num_queries: int
    hidden_size: int
    prompt_dim: int
    connector_heads: int
    connector_blocks: int
    template: str
    context_precisions: tuple[str, ...]
    default_context: str
    templates: Mapping[str, str] = field(default_factory=lambda: dict(LENS_TEMPLATES))
    system_prompt: str = LENS_SYSTEM_PROMPT
    queries_file: str = QUERIES_FILE
    mask_mode: str = "single"
    format: int = LENS_FORMAT

    def __post_init__(self) -> None:
        object.__setattr__(self, "context_precisions", tuple(self.context_precisions))
        object.__setattr__(self, "templates", MappingProxyType(dict(self.templates)))
        problems = []
        if self.format != LENS_FORMAT:
            problems.append(f"format {self.format!r} is not {LENS_FORMAT}")
        for name in ("num_queries", "hidden_size", "prompt_dim", "connector_heads", "connector_blocks"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                problems.append(f"{name} must be a positive int, got {v!r}")
        if dict(self.templates) != dict(LENS_TEMPLATES) or self.system_prompt != LENS_SYSTEM_PROMPT:
            problems.append("its prompt texts differ from this segzero-edge's LENS prompts")
        if self.template not in LENS_TEMPLATES:
            problems.append(f"template {self.template!r} is not one of {tuple(LENS_TEMPLATES)}")
        unknown = [p for p in self.context_precisions if p not in CONTEXT_GRAPHS]
        if unknown or not self.context_precisions:
            problems.append(
                f"context_precisions {list(self.context_precisions)} must name some of {tuple(CONTEXT_GRAPHS)}"
            )
        if self.default_context not in self.context_precisions:
            problems.append(f"default_context {self.default_context!r} is not among {list(self.context_precisions)}")
        if self.mask_mode != "single":
            problems.append(f"mask_mode {self.mask_mode!r} is not 'single'")
        if problems:
            raise _invalid("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "num_queries": self.num_queries,
            "hidden_size": self.hidden_size,
            "prompt_dim": self.prompt_dim,
            "connector_heads": self.connector_heads,
            "connector_blocks": self.connector_blocks,
            "template": self.template,
            "templates": dict(self.templates),
            "system_prompt": self.system_prompt,
            "context_precisions": list(self.context_precisions),
            "default_context": self.default_context,
            "queries_file": self.queries_file,
            "mask_mode": self.mask_mode,
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> LensSettings:
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise _invalid(f"incomplete: {exc}") from exc


def context_spec(
    precision: str, num_queries: int, hidden_size: int, prompt_dim: int, quantization: Mapping[str, Any]
) -> GraphSpec:
    """The manifest entry of the context graph variant ``precision``."""
    _, file = CONTEXT_GRAPHS[precision]
    return GraphSpec(
        file=file,
        inputs=(TensorSpec(QUERY_HIDDEN, "float32", (1, num_queries, hidden_size)),),
        outputs=(TensorSpec(SPARSE_PROMPT, "float32", (1, 1, prompt_dim)),),
        precision=precision,
        quantization=dict(quantization),
    )


def mask_decoder_spec(
    feature_shapes: Mapping[str, tuple[int, ...]],
    low_res_size: int,
    prompt_dim: int,
    *,
    objects: tuple[int, int, int] = (1, 1, 16),
    tokens: tuple[int, int, int] = (1, 1, 8),
) -> GraphSpec:
    """The ``lens.mask_decoder`` entry, with TensorRT profiles for N objects and S prompt tokens."""
    n, r = NUM_OBJECTS, low_res_size
    return GraphSpec(
        file=MASK_DECODER_FILE,
        inputs=(
            *(TensorSpec(name, "float32", tuple(feature_shapes[name])) for name in FEATURES),
            TensorSpec(SPARSE_PROMPT, "float32", (n, PROMPT_TOKENS, prompt_dim)),
        ),
        outputs=(
            TensorSpec(LOW_RES_MASKS, "float32", (n, 4, r, r)),
            TensorSpec(IOU_SCORES, "float32", (n, 4)),
            TensorSpec(OBJECT_SCORE_LOGITS, "float32", (n, 1)),
        ),
        precision="fp32",
        dynamic_dims={n: objects, PROMPT_TOKENS: tokens},
    )


def check_graphs(manifest: Manifest, settings: LensSettings, precision: str) -> tuple[GraphSpec, GraphSpec]:
    """The context graph of ``precision`` and the mask decoder, after checking their names and shapes.

    Raises:
        ManifestError: a graph is missing.
        EngineIncompatibleError: another contract's names, or ``precision`` not exported.
    """
    if precision not in settings.context_precisions:
        raise EngineIncompatibleError(
            f"this engine has no {precision} context graph (it has {', '.join(settings.context_precisions)})",
            hint="pick one of those, or re-export with `segzero-edge export lens --context-weights ...`",
        )
    context = manifest.graph(CONTEXT_GRAPHS[precision][0])
    decoder = manifest.graph(MASK_DECODER)
    for name, spec, ins, outs in (
        (CONTEXT_GRAPHS[precision][0], context, (QUERY_HIDDEN,), (SPARSE_PROMPT,)),
        (MASK_DECODER, decoder, MASK_DECODER_INPUTS, MASK_DECODER_OUTPUTS),
    ):
        got_in, got_out = tuple(t.name for t in spec.inputs), tuple(t.name for t in spec.outputs)
        if set(got_in) != set(ins) or set(got_out) != set(outs):
            raise EngineIncompatibleError(
                f"graph {name} has inputs {got_in} and outputs {got_out}; this runtime needs {ins} -> {outs}",
                hint="re-export the engine with `segzero-edge export lens`",
            )
    q_shape = context.input(QUERY_HIDDEN).shape
    if tuple(q_shape[1:]) != (settings.num_queries, settings.hidden_size):
        raise _invalid(
            f"context graph takes {list(q_shape)}, the settings say Q={settings.num_queries}, "
            f"hidden={settings.hidden_size}"
        )
    return context, decoder
