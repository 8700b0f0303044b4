"""``Reasoner``: the Seg-Zero reasoning model on ONNX Runtime, torch-free.

    from segzero_edge.reasoner import Reasoner, GenerationOptions
    r = Reasoner("engine_dir", device="auto")
    res = r.generate(image, "the cup the robot should pick up")
    res.text            # "<think>...</think><answer>{...}</answer>"  (coordinates in the model's input frame)
    res.timings_ms      # preprocess, vision, prefill, decode, total

Per request: preprocessing (``preprocess.py``) -> vision graph (image embeddings) -> prompt ids
(``tokenizer.py``) -> token embeddings from the table, image embeddings written at the ``<|image_pad|>``
positions -> M-RoPE position ids (``rope.py``) -> decoder prefill -> the generation loop
(``generate.py``) with KV-cache decoding. Answer coordinates are in the ``input_size x input_size`` frame;
``segzero_edge.decode_answer`` maps them to the original image.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from ..answer import decode_answer
from ..errors import EngineIncompatibleError, InputError, ManifestError
from ..manifest import MANIFEST_NAME, Manifest, Verify, load_manifest
from ..types import Answer
from .constraint import AnswerConstraintFactory
from .generate import GenerationOptions, TokenConstraint, generate_loop
from .preprocess import ImageInput, PreprocessConfig, preprocess_image
from .rope import decode_position_ids, mrope_position_ids
from .session import DecoderRunner, make_session, resolve_device
from .tokenizer import PromptTokenizer

log = logging.getLogger(__name__)

#: Version of the ``components["reasoner"]`` settings this runtime reads.
REASONER_FORMAT = 1

#: builds a fresh constraint for one generation from its options
ConstraintFactory = Callable[[GenerationOptions], TokenConstraint]


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "timings_ms", MappingProxyType(dict(self.timings_ms)))
        object.__setattr__(self, "token_ids", tuple(int(t) for t in self.token_ids))

    def answer(self) -> Answer:
        """The decoded answer (``segzero_edge.decode_answer``): box and points in original-image pixels."""
        return decode_answer(self.text, image_size=self.image_size, model_size=self.input_size)


def _open(engine: str | Path | Manifest, engine_dir: str | Path | None, verify: Verify) -> tuple[Manifest, Path]:
    if isinstance(engine, Manifest):
        if engine_dir is None:
            raise InputError("Reasoner(manifest) needs engine_dir= (where the manifest's files are)")
        return engine, Path(engine_dir)
    path = Path(engine)
    if path.name == MANIFEST_NAME and path.is_file():
        path = path.parent
    return load_manifest(path, verify=verify), path


class Reasoner:
    """The reasoning model of an engine directory, on ONNX Runtime.

    Args:
        engine: an engine directory (or its ``manifest.json``), or a loaded ``Manifest`` with ``engine_dir``.
        engine_dir: the directory of a ``Manifest`` given as ``engine``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        threads: ONNX Runtime intra-op threads (None: ONNX Runtime's default).
        io_binding: force I/O binding on or off (default: on for CUDA; keeps the KV cache on the GPU).
        verify: how ``load_manifest`` checks the files (``"size"`` by default; ``"full"`` hashes them).
        image_cache_size: image embeddings kept for reuse, keyed by the preprocessed pixels (several questions
            about the same image skip the vision tower); 0 disables the cache.
        constraint_factory: builds the constraint for ``GenerationOptions(constrained=True)``; default: the
            answer constraint (``segzero_edge.answer_constraint``, needs the native extension) for this
            tokenizer, logits width and input size.

    Raises:
        ManifestError: no reasoner in the engine, or files missing.
        EngineIncompatibleError: settings written by another (newer) segzero-edge.
    """

    def __init__(
        self,
        engine: str | Path | Manifest,
        *,
        engine_dir: str | Path | None = None,
        device: str = "auto",
        threads: int | None = None,
        io_binding: bool | None = None,
        verify: Verify = "size",
        constraint_factory: ConstraintFactory | None = None,
        image_cache_size: int = 1,
    ):
        self.manifest, self.engine_dir = _open(engine, engine_dir, verify)
        s = self.manifest.component("reasoner")
        if s.get("format") != REASONER_FORMAT:
            raise EngineIncompatibleError(
                f"reasoner settings format {s.get('format')!r} is not {REASONER_FORMAT}",
                hint="re-export the reasoner with this segzero-edge",
            )
        self.settings = s
        root = self.engine_dir
        self.preprocess_config = PreprocessConfig.from_dict(s["preprocess"])
        self.token_ids = dict(s["token_ids"])
        self.eos_ids = tuple(int(e) for e in s.get("eos_token_ids", ()))
        self.tokenizer = PromptTokenizer(root / s["files"]["tokenizer"], self.token_ids["image_pad"])
        emb = s["embeddings"]
        self.embeddings = np.load(root / emb["file"], mmap_mode="r")
        if list(self.embeddings.shape) != list(emb["shape"]):
            raise ManifestError(f"{emb['file']} has shape {self.embeddings.shape}, the manifest says {emb['shape']}")
        text = s["text"]
        self.num_image_tokens = int(s["num_image_tokens"])
        self.device = resolve_device(device)
        self.vision_session = make_session(
            root / self.manifest.graph("reasoner.vision").file, self.device, threads=threads
        )
        decoder = make_session(root / self.manifest.graph("reasoner.decoder").file, self.device, threads=threads)
        self.decoder = DecoderRunner(
            decoder,
            int(text["num_layers"]),
            int(text["num_kv_heads"]),
            int(text["head_dim"]),
            io_binding=io_binding,
            device_index=self.device.index,
        )
        if isinstance(image_cache_size, bool) or not isinstance(image_cache_size, int) or image_cache_size < 0:
            raise InputError(f"image_cache_size must be an int >= 0, got {image_cache_size!r}")
        self._cache_size = image_cache_size
        self._image_cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._constraint_factory = constraint_factory or AnswerConstraintFactory(
            self.tokenizer.tokenizer, vocab_size=int(text["vocab_size"]), input_size=self.preprocess_config.input_size
        )

    # -- stages ----------------------------------------------------------------------------------
    def image_embeddings(self, image: ImageInput) -> tuple[np.ndarray, tuple[int, int], dict[str, float]]:
        """``(image_embeds [num_image_tokens, hidden], original (W, H), timings_ms)``."""
        t0 = time.perf_counter()
        pre = preprocess_image(image, self.preprocess_config)
        key = hashlib.blake2b(pre.pixel_values.tobytes(), digest_size=16).digest() if self._cache_size else None
        t1 = time.perf_counter()
        embeds = self._image_cache.get(key) if key is not None else None
        if embeds is None:
            embeds = self.vision_session.run(None, {"pixel_values": pre.pixel_values})[0]
            if embeds.shape[0] != self.num_image_tokens:
                raise EngineIncompatibleError(
                    f"the vision graph returned {embeds.shape[0]} embeddings, the manifest says {self.num_image_tokens}"
                )
            if key is not None:
                embeds.setflags(write=False)
                self._image_cache[key] = embeds
                while len(self._image_cache) > self._cache_size:
                    self._image_cache.popitem(last=False)
        else:
            self._image_cache.move_to_end(key)
        t2 = time.perf_counter()
        return embeds, pre.original_size, {"preprocess": (t1 - t0) * 1e3, "vision": (t2 - t1) * 1e3}

    def prompt(self, question: str, image_embeds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``(ids [seq], inputs_embeds [1, seq, hidden], position_ids [3, 1, seq], rope_delta)`` of a request."""
        ids = self.tokenizer.encode_prompt(question, self.num_image_tokens)
        embeds = self.embed(ids)
        pads = ids == self.token_ids["image_pad"]
        embeds[pads] = image_embeds
        positions, delta = mrope_position_ids(
            ids, self.token_ids["image_pad"], [self.preprocess_config.grid_thw], self.preprocess_config.merge_size
        )
        return ids, embeds[None], positions, delta

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """Token embeddings ``[len(ids), hidden]`` float32 from the table."""
        return np.asarray(self.embeddings[np.asarray(ids, dtype=np.int64)], dtype=np.float32)

    def _step_fn(self, start: int, delta: int) -> Callable[[list[int]], np.ndarray]:
        pos = [start]

        def step(batch: list[int]) -> np.ndarray:
            logits = self.decoder(self.embed(np.asarray(batch))[None], decode_position_ids(pos[0], len(batch), delta))
            pos[0] += len(batch)
            return logits

        return step

    def make_constraint(self, options: GenerationOptions) -> TokenConstraint | None:
        if not options.constrained:
            return None
        return self._constraint_factory(options)

    # -- public ----------------------------------------------------------------------------------
    def generate(
        self,
        image: ImageInput,
        question: str,
        options: GenerationOptions | None = None,
        *,
        on_text: Callable[[str], None] | None = None,
    ) -> ReasonerResult:
        """Run the reasoning model on one image and question.

        Args:
            image: a path, PIL image or ``HxWx3`` uint8 RGB array.
            question: the instruction (Seg-Zero normalises it: lower case, periods stripped).
            options: sampling/stopping options (default: greedy, up to 1024 tokens, stop at ``</answer>``).
            on_text: streaming callback, called with each new piece of generated text.
        """
        options = options or GenerationOptions()
        if not isinstance(options, GenerationOptions):
            raise InputError(f"options must be GenerationOptions, got {type(options).__name__}")
        start = time.perf_counter()
        constraint = self.make_constraint(options)
        image_embeds, original, timings = self.image_embeddings(image)
        t0 = time.perf_counter()
        ids, embeds, positions, delta = self.prompt(question, image_embeds)
        t1 = time.perf_counter()
        timings["preprocess"] += (t1 - t0) * 1e3
        self.decoder.reset()
        first = self.decoder(embeds, positions)
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
            image_size=original,
            input_size=self.preprocess_config.input_size,
        )

    def teacher_forced_logits(self, image: ImageInput, question: str, token_ids: list[int]) -> np.ndarray:
        """Logits ``[len(token_ids), vocab]``: row ``j`` predicts ``token_ids[j]`` given the prompt and the
        tokens before it (one decoder call per token, like decoding). Used to compare precisions."""
        image_embeds, _, _ = self.image_embeddings(image)
        ids, embeds, positions, delta = self.prompt(question, image_embeds)
        self.decoder.reset()
        rows = [self.decoder(embeds, positions)]
        step = self._step_fn(len(ids), delta)
        for token in token_ids[:-1]:
            rows.append(step([int(token)]))
        return np.stack(rows)
