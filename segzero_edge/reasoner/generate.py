"""The generation loop: sampling, stopping, the answer constraint and jump-forward, in numpy.

The loop is independent of the model: it asks a ``step(token_ids) -> logits`` function for the logits
after feeding tokens, so the ONNX Runtime decoder and tests plug in the same way.

* **Sampling**: greedy (``do_sample=False``) or seeded sampling with ``temperature``, ``top_k`` and
  ``top_p`` applied in that order, like ``transformers``' logits warpers.
* **Stopping**: at an end-of-sequence id (the id is kept in the output, as ``transformers`` does), when the
  answer is complete (``stop_at_answer``: the constraint says so when there is one, else the streaming answer
  decoder ``segzero_edge.answer.AnswerStream`` sees ``</answer>`` close it), or after ``max_new_tokens``.
* **Constraint** (``TokenConstraint``): before each sampled token it may give a mask of allowed ids; it
  may also *force* a run of tokens (JSON keys, brackets, ``</think><answer>`` once the thinking budget is
  spent). Forced tokens are appended together and fed to the model in **one** decoder call
  (jump-forward); each extra token in a call is one sequential step saved.

Hand-written rather than onnxruntime-genai, by measurement (docs/architecture.md, benchmarks/results/genai.md):
on the same decoder graph genai gave the same greedy tokens and no faster decoding at one thread (35.8 vs 38.3
tok/s, 3B-shaped INT4), has no thinking budget that works (its llguidance grammar panics when the model closes
the think first), and feeds fewer forced tokens per call.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..answer import AnswerStream
from ..answer.constraint import DEFAULT_MAX_OBJECTS, MAX_OBJECTS_LIMIT, AnswerConstraint, ConstraintState
from ..errors import ConfigError
from ..prompt import SEG_ZERO, VISION_REASONER, check_family

log = logging.getLogger(__name__)

#: Tokens kept for ``</think><answer>{...}</answer>`` when the thinking budget is derived from
#: ``max_new_tokens``: the longest Seg-Zero answer with one token per digit is about 60 tokens.
ANSWER_RESERVE = 80
#: Tokens kept per object of a ``vision_reasoner`` answer list: ``{"bbox_2d": [...], "point_2d": [...]}, ``
#: with one token per digit is about 35 tokens.
OBJECT_RESERVE = 40


def answer_reserve(family: str = SEG_ZERO, max_objects: int = 1) -> int:
    """Tokens a constrained answer of ``family`` needs at most after the think (``max_objects`` objects
    for ``vision_reasoner``)."""
    if check_family(family) == SEG_ZERO:
        return ANSWER_RESERVE
    return 20 + OBJECT_RESERVE * max_objects


def _doc(text: str) -> dict[str, str]:
    """Field metadata: the help text the CLI shows for the option (``cli.options``)."""
    return {"help": text}


@dataclass(frozen=True)
class GenerationOptions:
    """How to generate (validated on creation). Defined once: ``SegmenterOptions`` and the CLI use it.

    Attributes:
        max_new_tokens: hard cap on generated tokens (forced ones included). Seg-Zero uses 1024.
        constrained: apply the token-level answer constraint, so every answer parses (native extension).
        thinking_budget: with ``constrained``, the most tokens inside ``<think>`` before ``</think><answer>``
            is forced. None: ``max_new_tokens`` minus what the longest constrained answer needs
            (``answer_reserve``: 80 tokens for Seg-Zero, 20 + 40 per object for a VisionReasoner list), so a
            constrained answer always fits.
        max_objects: the most objects a ``vision_reasoner`` answer may list under the constraint (1 to 128;
            Seg-Zero answers hold one).
        allow_empty: under the constraint a ``vision_reasoner`` answer may be the empty list ``[]``
            (VisionReasoner's "no object in the image"); off, it names at least one object.
        do_sample: sample instead of greedy decoding (Seg-Zero evaluates greedily).
        temperature, top_k, top_p: sampling warpers (``top_k=0`` and ``top_p=1.0`` disable them).
        seed: seed of the sampler's random generator (sampling is reproducible for a fixed seed).
        stop_at_answer: stop as soon as the streaming answer decoder sees ``</answer>`` close the answer.
        jump_forward: feed forced tokens in one decoder call (off: one call per token, for comparisons).
    """

    max_new_tokens: int = field(default=1024, metadata=_doc("most generated tokens"))
    constrained: bool = field(
        default=True, metadata=_doc("constrain generation token by token, so that the answer always parses")
    )
    thinking_budget: int | None = field(
        default=None,
        metadata=_doc(
            f"most thinking tokens before the answer is forced (needs the constraint; default: "
            f"max-new-tokens - {ANSWER_RESERVE} for Seg-Zero, - 20 - {OBJECT_RESERVE} x max-objects for VisionReasoner)"
        ),
    )
    max_objects: int = field(
        default=DEFAULT_MAX_OBJECTS,
        metadata=_doc(f"VisionReasoner engines: most objects in one answer (1 to {MAX_OBJECTS_LIMIT})"),
    )
    allow_empty: bool = field(
        default=False,
        metadata=_doc("VisionReasoner engines: the constrained answer may be [] (nothing matches)"),
    )
    do_sample: bool = field(default=False, metadata=_doc("sample instead of greedy decoding"))
    temperature: float = field(default=1.0, metadata=_doc("sampling temperature"))
    top_k: int = field(default=0, metadata=_doc("keep the k most likely tokens when sampling (0: off)"))
    top_p: float = field(default=1.0, metadata=_doc("nucleus sampling threshold (1.0: off)"))
    seed: int | None = field(default=None, metadata=_doc("sampling seed (default: random)"))
    stop_at_answer: bool = field(default=True, metadata=_doc("stop generating once </answer> closes the answer"))
    jump_forward: bool = field(default=True, metadata=_doc("feed the tokens the constraint forces in one decoder call"))

    def __post_init__(self) -> None:
        def _int(name: str, lo: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"{name} must be an int >= {lo}, got {v!r}")

        for name in ("constrained", "do_sample", "stop_at_answer", "jump_forward", "allow_empty"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        _int("max_new_tokens", 1)
        _int("top_k", 0)
        _int("max_objects", 1)
        if self.max_objects > MAX_OBJECTS_LIMIT:
            raise ConfigError(f"max_objects must be <= {MAX_OBJECTS_LIMIT}, got {self.max_objects}")
        if not (
            isinstance(self.temperature, (int, float))
            and not isinstance(self.temperature, bool)
            and math.isfinite(self.temperature)
            and self.temperature > 0
        ):
            raise ConfigError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        if not (isinstance(self.top_p, (int, float)) and not isinstance(self.top_p, bool) and 0 < self.top_p <= 1):
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigError(f"seed must be a non-negative int or None, got {self.seed!r}")
        if self.thinking_budget is not None:
            _int("thinking_budget", 0)
            if not self.constrained:
                raise ConfigError(
                    "thinking_budget needs constrained=True", hint="the budget is enforced by the answer constraint"
                )

    @property
    def effective_thinking_budget(self) -> int | None:
        """``thinking_budget_for("seg_zero")``."""
        return self.thinking_budget_for(SEG_ZERO)

    def thinking_budget_for(self, family: str) -> int | None:
        """The budget the constraint applies to ``family``'s answers: ``thinking_budget``, or
        ``max_new_tokens - answer_reserve(family, max_objects)`` (at least 0) when it is None; None when
        unconstrained."""
        if not self.constrained:
            return None
        if self.thinking_budget is not None:
            return self.thinking_budget
        return max(0, self.max_new_tokens - answer_reserve(family, self.max_objects))


def build_constraint(
    cache: dict[tuple[int, bool], AnswerConstraint],
    tokenizer,
    options: GenerationOptions,
    *,
    family: str,
    model_size: int,
    vocab_size: int,
) -> ConstraintState:
    """A fresh state of ``family``'s answer constraint for one generation with ``options``.

    The index over the vocabulary is built once per ``(max_objects, allow_empty)`` and kept in ``cache``
    (about a second for Qwen's 151k tokens and a Seg-Zero answer; each list object adds automaton states).
    """
    key = (options.max_objects, options.allow_empty) if family == VISION_REASONER else (1, False)
    constraint = cache.get(key)
    if constraint is None:
        constraint = AnswerConstraint.from_tokenizer(
            tokenizer,
            model_size=model_size,
            vocab_size=vocab_size,
            grammar=family,
            max_objects=key[0],
            allow_empty=key[1],
        )
        cache[key] = constraint
    budget = options.thinking_budget_for(family)
    if budget == 0 and options.thinking_budget is None:
        log.warning(
            "max_new_tokens=%d leaves no room to think: a constrained %s answer may need %d tokens; raise "
            "max_new_tokens%s",
            options.max_new_tokens,
            family,
            answer_reserve(family, options.max_objects),
            " or lower max_objects" if family == VISION_REASONER else "",
        )
    return constraint.new_state(budget)


@runtime_checkable
class TokenConstraint(Protocol):
    """What the loop needs from a token-level constraint (``answer.ConstraintState`` is one).

    ``mask(out)`` returns a bool mask over the model's logits (True = allowed), written into ``out`` when
    given, or None for no restriction; ``forced_ids()`` returns the tokens that must come next (empty when
    the next token is free); ``advance(token_id)`` is called for every appended token, sampled or forced;
    ``done`` is True once the answer is complete.
    """

    @property
    def done(self) -> bool: ...

    def mask(self, out: np.ndarray | None = None) -> np.ndarray | None: ...

    def forced_ids(self) -> Sequence[int]: ...

    def advance(self, token_id: int) -> None: ...


class Sampler:
    """Chooses the next token from logits, greedy or seeded sampling (see ``GenerationOptions``)."""

    def __init__(self, options: GenerationOptions):
        self.options = options
        self.rng = np.random.default_rng(options.seed)

    def __call__(self, logits: np.ndarray, allowed: np.ndarray | None = None) -> int:
        x = np.asarray(logits, dtype=np.float32)
        if allowed is not None:
            x = np.where(allowed[: x.shape[0]], x, np.float32(-np.inf))
        if not self.options.do_sample:
            return int(np.argmax(x))
        o = self.options
        x = x.astype(np.float64) / o.temperature
        if o.top_k and o.top_k < x.shape[0]:
            kth = np.partition(x, -o.top_k)[-o.top_k]
            x = np.where(x < kth, -np.inf, x)
        if o.top_p < 1.0:
            order = np.argsort(x, kind="stable")  # ascending, like transformers' TopPLogitsWarper
            probs = _softmax(x[order])
            remove = np.cumsum(probs) <= (1 - o.top_p)
            remove[-1] = False  # keep at least the most likely token
            x[order[remove]] = -np.inf
        probs = _softmax(x)
        return int(self.rng.choice(probs.shape[0], p=probs))


def _softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x)
    e = np.exp(x - m)
    return e / e.sum()


@dataclass(frozen=True)
class GenerationTrace:
    """What the loop produced.

    Attributes:
        token_ids: generated ids (forced ones included, EOS included when hit).
        stop_reason: ``"answer"``, ``"eos"`` or ``"max_new_tokens"``.
        decoder_calls: decoder calls after the prefill.
        forced_tokens: tokens the constraint forced.
        steps_saved: sequential decoder calls jump-forward avoided (extra tokens fed in multi-token calls).
        text: the streamed text (special tokens skipped).
    """

    token_ids: tuple[int, ...]
    stop_reason: str
    decoder_calls: int
    forced_tokens: int
    steps_saved: int
    text: str = ""
    step_sizes: tuple[int, ...] = field(default=())


def generate_loop(
    first_logits: np.ndarray,
    step: Callable[[list[int]], np.ndarray],
    options: GenerationOptions,
    *,
    eos_ids: Sequence[int] = (),
    constraint: TokenConstraint | None = None,
    text_step: Callable[[int], str] | None = None,
    on_text: Callable[[str], None] | None = None,
) -> GenerationTrace:
    """Generate after a prefill.

    Args:
        first_logits: ``[vocab]`` logits of the prompt's last position.
        step: feeds token ids (one call, one or several tokens) and returns the new last logits.
        options: sampling and stopping options.
        eos_ids: end-of-sequence ids.
        constraint: optional token constraint (mask + forced tokens).
        text_step: incremental detokenizer (``TextStream.step``); needed for ``on_text``, and for
            ``stop_at_answer`` without a constraint.
        on_text: called with each new piece of text as it is generated.
    """
    sampler = Sampler(options)
    stopper = AnswerStream() if options.stop_at_answer and constraint is None else None
    stop_on_done = options.stop_at_answer and constraint is not None
    eos = {int(e) for e in eos_ids}
    tokens: list[int] = []
    pieces: list[str] = []
    stop_reason = ""
    calls = forced_count = saved = 0
    sizes: list[int] = []

    def append(token: int) -> bool:
        """Append one token; True when generation must stop."""
        nonlocal stop_reason
        tokens.append(token)
        if constraint is not None:
            constraint.advance(token)
        if text_step is not None:
            piece = text_step(token)
            if piece:
                pieces.append(piece)
                if on_text is not None:
                    on_text(piece)
                if stopper is not None and stopper.feed(piece):
                    stop_reason = "answer"
                    return True
        if stop_on_done and constraint.done:
            stop_reason = "answer"
            return True
        if token in eos:
            stop_reason = "eos"
            return True
        if len(tokens) >= options.max_new_tokens:
            stop_reason = "max_new_tokens"
            return True
        return False

    def take(run: Sequence[int], batch: list[int]) -> bool:
        nonlocal forced_count
        for token in run:
            batch.append(int(token))
            forced_count += 1
            if append(int(token)):
                return True
        return False

    logits = first_logits
    while True:
        batch: list[int] = []
        forced = list(constraint.forced_ids()) if constraint is not None else []
        if forced:
            done = take(forced if options.jump_forward else forced[:1], batch)
        else:
            token = sampler(logits, constraint.mask() if constraint is not None else None)
            batch.append(token)
            done = append(token)
        # jump-forward: everything the constraint forces now goes into the same decoder call
        while options.jump_forward and constraint is not None and not done:
            more = list(constraint.forced_ids())
            if not more:
                break
            done = take(more, batch)
        if done:
            break
        logits = step(batch)
        calls += 1
        saved += len(batch) - 1
        sizes.append(len(batch))
    return GenerationTrace(
        token_ids=tuple(tokens),
        stop_reason=stop_reason,
        decoder_calls=calls,
        forced_tokens=forced_count,
        steps_saved=saved,
        text="".join(pieces),
        step_sizes=tuple(sizes),
    )
