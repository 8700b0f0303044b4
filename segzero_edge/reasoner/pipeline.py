"""``ReasonerPipeline``: the Seg-Zero reasoning model (Qwen2.5-VL) of an engine directory, over a backend.

    from segzero_edge.reasoner import ReasonerPipeline, GenerationOptions
    r = ReasonerPipeline("engine_dir", device="auto")
    res = r.generate(image, "the cup the robot should pick up")
    res.text            # "<think>...</think><answer>{...}</answer>"  (coordinates in the model's input frame)
    res.timings_ms      # preprocess, vision, prefill, decode, total

Per request: preprocessing (``preprocess.py``) -> the backend's vision tower (image embeddings; ``encode``,
reusable across questions about one frame) -> prompt ids (``segzero_edge.prompt``) -> token embeddings, image
embeddings written at the ``<|image_pad|>`` positions -> M-RoPE position ids (``preprocess.py``) -> one backend step
over the prompt (prefill) -> the generation loop (``generate.py``), one backend step per call. Answer
coordinates are in the ``input_size x input_size`` frame; ``segzero_edge.decode_answer`` maps them to the
original image.

Backends (``ReasonerBackend``): ONNX Runtime (``"ort"``, ``ort_backend.py``) and the torch reference
(``"torch"``: transformers' model as the step function, from the engine's source checkpoint; a plugin of the
torch side). The pipeline holds the KV cache through its backend: one generation at a time per pipeline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from ..answer import AnswerConstraint, decode_answer
from ..answer.constraint import DEFAULT_MAX_OBJECTS
from ..answer.lens import decode_lens_answer
from ..errors import EngineIncompatibleError, InputError
from ..frame import ImageLike
from ..manifest import MANIFEST_NAME, Manifest, Verify, load_manifest
from ..ort import SessionFactory
from ..prompt import LENS, SEG_ZERO, PromptTokenizer
from ..types import Answer, GenerationStats
from .contract import COMPONENT, SEQ, TOTAL, ReasonerSettings, check_graphs
from .generate import GenerationOptions, TokenConstraint, answer_reserve, build_constraint, generate_loop
from .preprocess import decode_position_ids, mrope_position_ids, preprocess_image

log = logging.getLogger(__name__)

#: builds a fresh constraint for one generation from its options
ConstraintFactory = Callable[[GenerationOptions], TokenConstraint]


class ReasonerBackend(Protocol):
    """What the pipeline needs from a backend: the vision tower, the embedding table and one decoder step.

    Attributes:
        name: ``"ort"``, ``"torch"``...
        device: where it runs (``"cpu"``, ``"cuda:0"``...).
    """

    name: str
    device: str

    def vision(self, pixel_values: np.ndarray) -> np.ndarray:
        """``pixel_values [num_patches, 3*T*P*P]`` float32 -> ``[num_image_tokens, hidden]`` float32."""
        ...

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """Token embeddings ``[len(ids), hidden]`` float32."""
        ...

    def reset(self) -> None:
        """Forget the KV cache (a new prompt follows)."""
        ...

    def step(self, inputs_embeds: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """Feed ``[1, n, hidden]`` at M-RoPE ``position_ids [3, 1, n]``; the last position's logits ``[vocab]``."""
        ...

    def hidden(self, inputs_embeds: np.ndarray, position_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """A fresh prefill (the KV cache is left alone): post-norm hidden states ``[n, hidden]`` float32 of
        ``[1, n, hidden]`` at ``position_ids [3, 1, n]``, keys masked by ``attention_mask [n]`` (1 = attend).
        Needed by LENS engines only (their decoder graph returns ``hidden_states``)."""
        ...


@dataclass(frozen=True, eq=False)
class VisionEmbeds:
    """One image through the vision tower (``ReasonerPipeline.encode``); reuse it for any number of questions.

    Attributes:
        embeds: ``[num_image_tokens, hidden]`` float32, read-only.
        image_size: ``(width, height)`` of the original image.
        timings_ms: ``"preprocess"`` and ``"vision"`` milliseconds.
    """

    embeds: np.ndarray
    image_size: tuple[int, int]
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        embeds = np.ascontiguousarray(self.embeds, dtype=np.float32)
        embeds.setflags(write=False)
        object.__setattr__(self, "embeds", embeds)
        object.__setattr__(self, "timings_ms", MappingProxyType(dict(self.timings_ms)))


@dataclass(frozen=True)
class ReasonerResult:
    """One generation.

    Attributes:
        text: the generated text, special tokens skipped (``<think>...</think><answer>...</answer>``);
            answer coordinates are in the model's ``input_size`` frame.
        token_ids: generated ids (EOS included when generation ended on it).
        prompt_tokens: length of the prompt (image pads included).
        stop_reason: ``"answer"`` (``</answer>`` completed), ``"eos"`` or ``"max_new_tokens"``.
        timings_ms: ``preprocess``, ``vision``, ``prefill``, ``decode`` and ``total`` milliseconds.
        decode_tokens_per_s: generated tokens per second of the decode stage.
        forward_calls: decoder calls, prefill included.
        forced_tokens: tokens forced by the answer constraint.
        jump_forward_steps_saved: decoder calls avoided by feeding forced tokens together.
        image_size: ``(width, height)`` of the original image.
        input_size: the model's square input size (the frame of the answer's coordinates).
        family: the model family that wrote it (``segzero_edge.prompt.FAMILIES``).
    """

    text: str
    token_ids: tuple[int, ...]
    prompt_tokens: int
    stop_reason: str
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    decode_tokens_per_s: float = 0.0
    forward_calls: int = 0
    forced_tokens: int = 0
    jump_forward_steps_saved: int = 0
    image_size: tuple[int, int] = (0, 0)
    input_size: int = 0
    family: str = SEG_ZERO

    def __post_init__(self) -> None:
        object.__setattr__(self, "timings_ms", MappingProxyType(dict(self.timings_ms)))
        object.__setattr__(self, "token_ids", tuple(int(t) for t in self.token_ids))

    def answer(self) -> Answer:
        """The decoded answer (``segzero_edge.decode_answer``): box and points in original-image pixels.

        When the answer does not decode because ``max_new_tokens`` cut it off, ``error`` says so. LENS
        answers are read by LENS's own rule (``answer.lens``): one box, no points."""
        if self.family == LENS:
            answer = decode_lens_answer(self.text, self.image_size, self.input_size)
        else:
            answer = decode_answer(self.text, image_size=self.image_size, model_size=self.input_size)
        if not answer.ok and self.stop_reason == "max_new_tokens":
            need = (
                ""
                if self.family == LENS
                else f"; a constrained answer needs up to {answer_reserve(self.family, DEFAULT_MAX_OBJECTS)} "
                "tokens after the thinking"
            )
            error = (
                f"{answer.error}: generation stopped at max_new_tokens={len(self.token_ids)} before the answer "
                f"was complete (raise max_new_tokens{need})"
            )
            answer = replace(answer, error=error)
        return answer

    def stats(self) -> GenerationStats:
        """Token counts and speed of this generation."""
        return GenerationStats(
            prompt_tokens=self.prompt_tokens,
            generated_tokens=len(self.token_ids),
            decode_tokens_per_s=self.decode_tokens_per_s,
            stop_reason=self.stop_reason,
            forward_calls=self.forward_calls,
            forced_tokens=self.forced_tokens,
        )


def _open(engine: str | Path | Manifest, engine_dir: str | Path | None, verify: Verify) -> tuple[Manifest, Path]:
    if isinstance(engine, Manifest):
        if engine_dir is None:
            raise InputError("ReasonerPipeline(manifest) needs engine_dir= (where the manifest's files are)")
        return engine, Path(engine_dir)
    path = Path(engine)
    if path.name == MANIFEST_NAME and path.is_file():
        path = path.parent
    return load_manifest(path, verify=verify), path


class ReasonerPipeline:
    """The reasoning model of an engine directory.

    Args:
        engine: an engine directory (or its ``manifest.json``), or a loaded ``Manifest`` with ``engine_dir``.
        engine_dir: the directory of a ``Manifest`` given as ``engine``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (``segzero_edge.ort``); a torch device with
            ``backend="torch"``.
        backend: ``"ort"`` (ONNX Runtime), ``"torch"`` (the reference, from the engine's source checkpoint;
            ``backend_options``: ``checkpoint``, ``weights``), or a ``ReasonerBackend`` instance.
        threads: CPU threads per ONNX Runtime session, or torch threads (None: the library's default).
        io_binding: ONNX Runtime: force I/O binding on or off (default: on for CUDA; keeps the KV cache on
            the GPU).
        verify: how ``load_manifest`` checks the files (``"size"`` by default; ``"full"`` hashes them).
        sessions: an ONNX Runtime session factory to share (``Segmenter`` passes its own); default: a new
            one for ``device`` and ``threads``.
        constraint_factory: builds the constraint for ``GenerationOptions(constrained=True)``; default: the
            answer constraint (``segzero_edge.answer``, needs the native extension) for this tokenizer,
            logits width and input size.
        backend_options: keyword arguments of a plugin backend's constructor.

    Raises:
        ManifestError: no reasoner in the engine, or files missing.
        EngineIncompatibleError: settings or graphs written by another segzero-edge.
        BackendUnavailableError: the backend or the device is not available here.
    """

    def __init__(
        self,
        engine: str | Path | Manifest,
        *,
        engine_dir: str | Path | None = None,
        device: str = "auto",
        backend: str | ReasonerBackend = "ort",
        threads: int | None = None,
        io_binding: bool | None = None,
        verify: Verify = "size",
        sessions: SessionFactory | None = None,
        constraint_factory: ConstraintFactory | None = None,
        backend_options: Mapping[str, Any] | None = None,
    ):
        self.manifest, self.engine_dir = _open(engine, engine_dir, verify)
        self.settings = ReasonerSettings.from_mapping(self.manifest.component(COMPONENT))
        self.vision_spec, self.decoder_spec = check_graphs(self.manifest, self.settings)
        s = self.settings
        self.preprocess_config = s.preprocess
        self.input_size = s.input_size  # the square model input: the frame of the answer's coordinates
        self.family = s.family
        self.num_image_tokens = s.num_image_tokens
        self.token_ids = dict(s.token_ids)
        self.eos_ids = s.eos_token_ids
        self._grid = [s.preprocess.grid_thw]
        self.tokenizer = PromptTokenizer(self.engine_dir / s.files["tokenizer"], self.token_ids["image_pad"])
        self.backend = self._open_backend(backend, device, threads, io_binding, sessions, backend_options or {})
        self._constraint_factory = constraint_factory
        self._constraints: dict[tuple[int, bool], AnswerConstraint] = {}  # by (max_objects, allow_empty)
        log.info("reasoner: %s backend on %s (%s weights)", self.backend.name, self.backend.device, s.weights)

    def _open_backend(self, backend, device, threads, io_binding, sessions, options) -> ReasonerBackend:
        if not isinstance(backend, str):
            return backend
        if backend == "ort":
            from .ort_backend import OrtReasonerBackend

            if options:
                raise InputError(f"backend 'ort' takes no backend options, got {sorted(options)}")
            sessions = sessions or SessionFactory(device, threads=threads)
            return OrtReasonerBackend(
                self.engine_dir, self.settings, self.vision_spec, self.decoder_spec, sessions, io_binding=io_binding
            )
        from ..plugins import load_plugin

        plugin = load_plugin(backend)
        return plugin.open_reasoner(
            self.engine_dir, self.manifest, self.settings, device=device, threads=threads, **options
        )

    # -- stages ----------------------------------------------------------------------------------
    def encode(self, image: ImageLike) -> VisionEmbeds:
        """Preprocess ``image`` and run the vision tower: the image embeddings of one frame."""
        t0 = time.perf_counter()
        pre = preprocess_image(image, self.preprocess_config)
        t1 = time.perf_counter()
        embeds = self.backend.vision(pre.pixel_values)
        if embeds.shape[0] != self.num_image_tokens:
            raise EngineIncompatibleError(
                f"the vision tower returned {embeds.shape[0]} embeddings, the manifest says {self.num_image_tokens}"
            )
        t2 = time.perf_counter()
        return VisionEmbeds(
            embeds, pre.original_size, timings_ms={"preprocess": (t1 - t0) * 1e3, "vision": (t2 - t1) * 1e3}
        )

    def prompt(self, question: str, image_embeds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``(ids [seq], inputs_embeds [1, seq, hidden], position_ids [3, 1, seq], rope_delta)`` of a request."""
        ids = self.tokenizer.encode_prompt(
            question, self.num_image_tokens, family=self.family, template=self.settings.prompt_template
        )
        self._check_length(len(ids), 0)
        embeds = self.backend.embed(ids)
        embeds[ids == self.token_ids["image_pad"]] = image_embeds
        positions, delta = mrope_position_ids(
            ids, self.token_ids["image_pad"], self._grid, self.preprocess_config.merge_size
        )
        return ids, embeds[None], positions, delta

    def _check_length(self, prompt_tokens: int, max_new_tokens: int) -> None:
        """Refuse a request the decoder's exported profile does not cover (``seq``: the longest prompt;
        ``total``: prompt plus generated tokens) before any memory is spent on it."""
        dims = self.decoder_spec.dynamic_dims
        text = prompt_tokens - self.num_image_tokens
        if SEQ in dims and prompt_tokens > dims[SEQ][2]:
            raise InputError(
                f"the prompt has {prompt_tokens} tokens ({text} of text), more than the {dims[SEQ][2]} this "
                "engine's decoder was exported for",
                hint="shorten the instruction (or re-export the reasoner with a larger --max-context)",
            )
        if TOTAL in dims and max_new_tokens and prompt_tokens + max_new_tokens > dims[TOTAL][2]:
            room = dims[TOTAL][2] - prompt_tokens
            raise InputError(
                f"a prompt of {prompt_tokens} tokens plus max_new_tokens={max_new_tokens} exceeds the context "
                f"of {dims[TOTAL][2]} tokens this engine's decoder was exported for",
                hint=f"pass max_new_tokens <= {room}, or shorten the instruction",
            )

    def _step_fn(self, start: int, delta: int) -> Callable[[list[int]], np.ndarray]:
        pos = [start]

        def step(batch: list[int]) -> np.ndarray:
            embeds = self.backend.embed(np.asarray(batch))[None]
            logits = self.backend.step(embeds, decode_position_ids(pos[0], len(batch), delta))
            pos[0] += len(batch)
            return logits

        return step

    def effective_options(self, options: GenerationOptions) -> GenerationOptions:
        """``options`` as this family runs them: LENS answers are free text (the mask does not depend on
        them, and no constraint knows their grammar) and run to EOS, which the mask pass reads too."""
        if self.family == LENS and (options.constrained or options.stop_at_answer):
            return replace(options, constrained=False, stop_at_answer=False)
        return options

    def make_constraint(self, options: GenerationOptions) -> TokenConstraint | None:
        """A fresh constraint for one generation (None when ``options.constrained`` is off)."""
        if not options.constrained:
            return None
        if self._constraint_factory is not None:
            return self._constraint_factory(options)
        return build_constraint(
            self._constraints,
            self.tokenizer.tokenizer,
            options,
            family=self.family,
            model_size=self.input_size,
            vocab_size=self.settings.text.vocab_size,
        )

    # -- public ----------------------------------------------------------------------------------
    def generate(
        self,
        image: ImageLike | None,
        question: str,
        options: GenerationOptions | None = None,
        *,
        on_text: Callable[[str], None] | None = None,
        vision: VisionEmbeds | None = None,
    ) -> ReasonerResult:
        """Run the reasoning model on one image and question.

        Args:
            image: a path, PIL image or ``HxWx3`` uint8 RGB array (may be None when ``vision`` is given).
            question: the instruction (Seg-Zero normalises it: lower case, periods stripped).
            options: sampling/stopping options (default: ``GenerationOptions()``, greedy and constrained).
            on_text: streaming callback, called with each new piece of generated text.
            vision: this image's ``encode`` result, to skip the vision tower (several questions, one frame).
        """
        options = options or GenerationOptions()
        if not isinstance(options, GenerationOptions):
            raise InputError(f"options must be GenerationOptions, got {type(options).__name__}")
        options = self.effective_options(options)
        start = time.perf_counter()
        constraint = self.make_constraint(options)
        if vision is None:
            if image is None:
                raise InputError("generate() needs an image (or its encode() result as vision=)")
            vision = self.encode(image)
            timings = dict(vision.timings_ms)
        else:
            timings = {"preprocess": 0.0, "vision": 0.0}
        t0 = time.perf_counter()
        ids, embeds, positions, delta = self.prompt(question, vision.embeds)
        self._check_length(len(ids), options.max_new_tokens)
        t1 = time.perf_counter()
        timings["preprocess"] += (t1 - t0) * 1e3
        self.backend.reset()
        first = self.backend.step(embeds, positions)
        t2 = time.perf_counter()
        stream = self.tokenizer.stream()
        trace = generate_loop(
            first,
            self._step_fn(len(ids), delta),
            options,
            eos_ids=self.eos_ids,
            constraint=constraint,
            text_step=stream.step,
            on_text=on_text,
        )
        t3 = time.perf_counter()
        timings.update(prefill=(t2 - t1) * 1e3, decode=(t3 - t2) * 1e3, total=(t3 - start) * 1e3)
        n = len(trace.token_ids)
        text = self.tokenizer.decode(trace.token_ids)
        if on_text is not None and len(text) > len(trace.text) and text.startswith(trace.text):
            on_text(text[len(trace.text) :])  # a trailing partial UTF-8 character the stream held back
        return ReasonerResult(
            text=text,
            token_ids=trace.token_ids,
            prompt_tokens=int(ids.size),
            stop_reason=trace.stop_reason,
            timings_ms=timings,
            decode_tokens_per_s=n / (t3 - t2) if t3 > t2 else 0.0,
            forward_calls=1 + trace.decoder_calls,
            forced_tokens=trace.forced_tokens,
            jump_forward_steps_saved=trace.steps_saved,
            image_size=vision.image_size,
            input_size=self.input_size,
            family=self.family,
        )

    def query_hidden(
        self, question: str, token_ids: tuple[int, ...] | list[int], vision: VisionEmbeds, queries: np.ndarray
    ) -> np.ndarray:
        """LENS's mask pass: the post-norm hidden states ``[Q, hidden]`` of ``queries [Q, hidden]`` appended to
        the whole sequence (prompt + ``token_ids``, the generation with its EOS), in a fresh prefill.

        Positions are plain 1-D (``cumsum(attention_mask) - 1`` on all three M-RoPE rows, 1 where masked),
        not the generation's M-RoPE: that is how LENS runs and trains the pass (transformers 4.51's text-only
        ``get_rope_index`` branch, reference/other_families.md §1.1). Pad tokens (``pad_token_id``) are masked.
        The generation's KV cache cannot be reused (its positions differ); the vision embeddings are.
        """
        if not self.settings.hidden_states:
            raise EngineIncompatibleError(
                "this engine's decoder graph has no hidden_states output (the LENS mask pass needs it)",
                hint="export the engine with `segzero-edge export lens`",
            )
        ids, embeds, _, _ = self.prompt(question, vision.embeds)
        gen = np.asarray(token_ids, dtype=np.int64)
        queries = np.asarray(queries, dtype=np.float32)
        generated = self.backend.embed(gen) if gen.size else np.zeros((0, queries.shape[1]), np.float32)
        seq = np.concatenate([embeds[0], generated, queries])[None]
        all_ids = np.concatenate([ids, gen])
        dims = self.decoder_spec.dynamic_dims
        if TOTAL in dims and seq.shape[1] + 1 > dims[TOTAL][2]:  # + the cache's placeholder slot
            raise InputError(
                f"the mask pass needs {seq.shape[1]} positions, more than this engine's decoder was exported for",
                hint="lower max_new_tokens, or re-export with a larger --max-context",
            )
        pad = self.settings.pad_token_id
        mask = np.ones(seq.shape[1], np.int64)
        if pad is not None:
            mask[: all_ids.size] = all_ids != int(pad)
        positions = np.where(mask > 0, np.cumsum(mask) - 1, 1).astype(np.int64)
        hidden = self.backend.hidden(seq, np.broadcast_to(positions, (3, 1, positions.size)).copy(), mask)
        return np.asarray(hidden[-len(queries) :], dtype=np.float32)

    def teacher_forced_logits(
        self, image: ImageLike | None, question: str, token_ids: list[int], *, vision: VisionEmbeds | None = None
    ) -> np.ndarray:
        """Logits ``[len(token_ids), vocab]``: row ``j`` predicts ``token_ids[j]`` given the prompt and the
        tokens before it (one decoder call per token, like decoding). Used to compare precisions. ``vision``:
        this image's ``encode`` result, to skip the vision tower."""
        vision = vision if vision is not None else self.encode(image)
        ids, embeds, positions, delta = self.prompt(question, vision.embeds)
        self.backend.reset()
        rows = [self.backend.step(embeds, positions)]
        step = self._step_fn(len(ids), delta)
        for token in token_ids[:-1]:
            rows.append(step([int(token)]))
        return np.stack(rows)
