"""The token-level answer constraint: steer generation so that a valid answer always comes out.

Built once per tokenizer (``AnswerConstraint``), then one ``ConstraintState`` per generation::

    constraint = AnswerConstraint.from_tokenizer(tokenizer, model_size=840, vocab_size=logits_width)
    state = constraint.new_state(thinking_budget=64)
    while not state.done:
        forced = state.forced_ids()          # jump-forward: tokens that are the only continuation
        for t in forced:                     # (append them in one forward pass, no sampling)
            ids.append(t); state.advance(t)
        if state.done: break
        logits = run_model(...)              # float32 numpy [vocab_size]
        state.apply(logits)                  # disallowed tokens -> -inf, in place
        t = sample(logits); ids.append(t); state.advance(t)

During the think everything is allowed (except end-of-sequence, banned special tokens, and tokens that
would close the think and continue with something the answer grammar rejects). Once ``<answer>`` is
written, or ``</think>`` (then optional ' '/'\\n', then ``<answer>``), or the thinking budget runs out
(which forces ``</think><answer>``), only tokens that keep the text a prefix of the family's answer are
allowed: ``{"bbox": [x1, y1, x2, y2], "points_1": [x, y], "points_2": [x, y]}</answer>`` (``seg_zero``) or
``[{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}, ...]</answer>`` with 1 (or 0: ``allow_empty``) to
``max_objects`` objects (``vision_reasoner``), with integers in ``[0, model_w]`` for x and ``[0, model_h]``
for y (model-input pixels; inclusive: official ground truth rescaled with ``int(v * 840 / W + 0.5)`` reaches
840).
Details: ``csrc/core/answer_constraint.hpp``.
Everything is decided on the tokens' bytes, so byte-level tokens that are partial UTF-8 are exact.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import BackendUnavailableError, InputError
from ..prompt import SEG_ZERO, SEG_ZERO_INPUT_SIZE, VISION_REASONER
from . import decode as _answer

__all__ = ["AnswerConstraint", "ConstraintState", "token_bytes_from_tokenizer"]

logger = logging.getLogger(__name__)

#: The most objects a ``vision_reasoner`` answer may hold under the constraint (the native limit; the
#: official rewards read at most 120). Each object adds about 5k automaton states at 840 pixels.
MAX_OBJECTS_LIMIT = 128
#: Default ``max_objects``: the SAM2 decoder's object profile (one decoder call for every object).
DEFAULT_MAX_OBJECTS = 16

#: Special tokens that end a Qwen2.5-VL generation (allowed only once the answer is complete).
QWEN_EOS_TOKENS = ("<|im_end|>", "<|endoftext|>")
_PHASES = ("think", "answer", "done")
# A byte that is in no tag and in no answer: stands for tokens whose bytes are unknown.
_OPAQUE = b"\xff"


def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode (the byte-level alphabet of Qwen's BPE)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _is_byte_level(tok) -> bool:
    decoder = getattr(tok, "decoder", None)
    if decoder is not None and type(decoder).__name__ == "ByteLevel":
        return True
    try:
        import json

        spec = json.loads(tok.to_str()).get("decoder") or {}
    except Exception:  # not a tokenizers.Tokenizer: no byte-level knowledge
        return False
    parts = spec.get("decoders", [spec]) if spec.get("type") == "Sequence" else [spec]
    return any(p.get("type") == "ByteLevel" for p in parts)


def token_bytes_from_tokenizer(tokenizer) -> tuple[list[bytes | None], dict[str, int], list[int]]:
    """The exact bytes of every token id of a ``tokenizers.Tokenizer`` (or a ``transformers`` fast
    tokenizer, through its ``backend_tokenizer``).

    Each id is decoded alone (``skip_special_tokens=False``). When that yields U+FFFD, the token is
    partial UTF-8 (a byte-level piece of a multi-byte character): its bytes are then read from the
    byte-level alphabet; without one, the entry is None (unknown bytes: never allowed in the answer).

    Returns:
        ``(tokens, special_ids, missing_ids)``: bytes per id, ``{content: id}`` of special added tokens,
        and ids in the range that have no token.
    """
    tok = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if not all(hasattr(tok, name) for name in ("get_vocab_size", "decode_batch", "id_to_token")):
        raise InputError(
            f"expected a tokenizers.Tokenizer or a transformers fast tokenizer, got {type(tokenizer).__name__}",
            hint="pass tokenizer.backend_tokenizer, or build the vocabulary yourself (one bytes per id)",
        )
    n = tok.get_vocab_size(with_added_tokens=True)
    added = tok.get_added_tokens_decoder()
    texts = tok.decode_batch([[i] for i in range(n)], skip_special_tokens=False)
    byte_level = _is_byte_level(tok)
    decoder = _byte_decoder() if byte_level else {}
    out: list[bytes | None] = []
    missing: list[int] = []
    for i, text in enumerate(texts):
        if i in added:
            out.append(added[i].content.encode("utf-8", "surrogatepass"))
            continue
        piece = tok.id_to_token(i)
        if piece is None:
            missing.append(i)
            out.append(b"")
        elif "\ufffd" not in text:
            out.append(text.encode("utf-8", "surrogatepass"))
        elif byte_level and all(c in decoder for c in piece):
            out.append(bytes(decoder[c] for c in piece))
        else:
            out.append(None)
    specials = {t.content: i for i, t in added.items() if t.special}
    return out, specials, missing


def _ids(values: Iterable[int], what: str) -> list[int]:
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError):
        raise InputError(f"{what} must be token ids (ints)") from None


def _model_pair(model_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(model_size, int) and not isinstance(model_size, bool):
        return model_size, model_size
    if isinstance(model_size, Sequence) and len(model_size) == 2:
        return int(model_size[0]), int(model_size[1])
    raise InputError(f"model_size must be an int or a (width, height) pair, got {model_size!r}")


def _native_module():
    """The extension, when built (independent of SEGZERO_EDGE_PURE_PYTHON, which selects the decoder)."""
    try:
        from .. import _native
    except ImportError:
        return None
    return _native if getattr(_native, "abi_version", lambda: 0)() == _answer.NATIVE_ABI else None


class AnswerConstraint:
    """The answer constraint for one vocabulary and model input size (immutable; share it freely).

    Args:
        vocab: the text of each token id: ``bytes`` (exact), ``str`` (UTF-8 encoded) or None (unknown).
        model_size: model input size in pixels (int or ``(w, h)``): answer integers lie in ``[0, w]`` /
            ``[0, h]``. Seg-Zero: 840.
        thinking_budget: default number of think tokens after which ``</think><answer>`` is forced
            (None: no budget). ``new_state`` can override it.
        eos_token_ids: ids that end generation: banned until the answer is complete, then the only ones
            allowed.
        banned_token_ids: ids never allowed (special tokens that are not text).
        vocab_size: width of the logits (>= len(vocab)); ids past the vocabulary are banned.
        max_pre_answer_ws: ' ' or '\\n' bytes allowed between ``</think>`` and ``<answer>``.
        grammar: the model family's answer grammar, ``"seg_zero"`` or ``"vision_reasoner"``.
        max_objects: ``vision_reasoner``: most objects in the answer list (1 to ``MAX_OBJECTS_LIMIT``).
        allow_empty: ``vision_reasoner``: the empty list ``[]`` ("nothing matches") is an answer too.
    """

    def __init__(
        self,
        vocab: Sequence[bytes | str | None],
        *,
        model_size: int | Sequence[int] = SEG_ZERO_INPUT_SIZE,
        thinking_budget: int | None = None,
        eos_token_ids: Iterable[int] = (),
        banned_token_ids: Iterable[int] = (),
        vocab_size: int | None = None,
        max_pre_answer_ws: int = 2,
        grammar: str = SEG_ZERO,
        max_objects: int = DEFAULT_MAX_OBJECTS,
        allow_empty: bool = False,
    ) -> None:
        if grammar not in (SEG_ZERO, VISION_REASONER):
            raise InputError(f"unknown answer grammar {grammar!r}", hint=f"use {SEG_ZERO} or {VISION_REASONER}")
        if isinstance(max_objects, bool) or not isinstance(max_objects, int):
            raise InputError(f"max_objects must be an int, got {max_objects!r}")
        if not 1 <= max_objects <= MAX_OBJECTS_LIMIT:
            raise InputError(f"max_objects must be an int in [1, {MAX_OBJECTS_LIMIT}], got {max_objects!r}")
        if not isinstance(allow_empty, bool):
            raise InputError(f"allow_empty must be True or False, got {allow_empty!r}")
        self.grammar = grammar
        self.max_objects = max_objects if grammar == VISION_REASONER else 1
        self.allow_empty = allow_empty and grammar == VISION_REASONER
        native = _native_module()
        if native is None:
            raise BackendUnavailableError(
                "the answer constraint needs the native extension segzero_edge._native, which is not available",
                hint="build it with `make install` (or `pip install --no-build-isolation -e .`)",
            )
        self._native = native
        tokens: list[bytes] = []
        for i, t in enumerate(vocab):
            if isinstance(t, bytes):
                tokens.append(t)
            elif isinstance(t, str):
                tokens.append(t.encode("utf-8", "surrogatepass"))
            elif t is None:
                tokens.append(_OPAQUE)
            else:
                raise InputError(f"vocab[{i}] must be bytes, str or None, got {type(t).__name__}")
        self._budget = self._check_budget(thinking_budget)
        self.model_size = _model_pair(model_size)
        try:
            self._index = native.ConstraintIndex(
                tokens,
                self.model_size[0],
                self.model_size[1],
                len(tokens) if vocab_size is None else int(vocab_size),
                _ids(eos_token_ids, "eos_token_ids"),
                _ids(banned_token_ids, "banned_token_ids"),
                int(max_pre_answer_ws),
                0 if grammar == SEG_ZERO else 1,
                self.max_objects,
                0 if self.allow_empty else 1,
            )
        except ValueError as exc:
            raise InputError(f"cannot build the answer constraint: {exc}") from None
        self.eos_token_ids = tuple(sorted(set(_ids(eos_token_ids, "eos_token_ids"))))
        logger.debug("answer constraint: %d tokens, %d automaton states", len(tokens), self._index.num_states)

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer,
        *,
        eos_tokens: Sequence[str] = QWEN_EOS_TOKENS,
        ban_other_special_tokens: bool = True,
        **kwargs,
    ) -> AnswerConstraint:
        """Build from a ``tokenizers.Tokenizer`` (or a ``transformers`` fast tokenizer).

        ``eos_tokens`` that exist in the vocabulary become ``eos_token_ids``; other special tokens are
        banned (they are not text) unless ``ban_other_special_tokens=False``. Remaining keyword
        arguments go to the constructor (``model_size``, ``thinking_budget``, ``vocab_size``...).
        """
        tokens, specials, missing = token_bytes_from_tokenizer(tokenizer)
        eos = [specials[name] for name in eos_tokens if name in specials]
        banned = list(missing)
        if ban_other_special_tokens:
            banned += [i for name, i in specials.items() if name not in eos_tokens]
        kwargs.setdefault("eos_token_ids", eos)
        kwargs.setdefault("banned_token_ids", banned)
        return cls(tokens, **kwargs)

    @staticmethod
    def _check_budget(budget: int | None) -> int:
        if budget is None:
            return -1
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
            raise InputError(f"thinking_budget must be None or an int >= 0, got {budget!r}")
        return budget

    @property
    def vocab_size(self) -> int:
        """Width of the logits this constraint masks."""
        return self._index.vocab_size

    @property
    def thinking_budget(self) -> int | None:
        return None if self._budget < 0 else self._budget

    def new_state(self, thinking_budget: int | type(...) | None = ...) -> ConstraintState:
        """A fresh state for one generation (``thinking_budget`` defaults to the constraint's)."""
        budget = self._budget if thinking_budget is ... else self._check_budget(thinking_budget)
        return ConstraintState(self._native.ConstraintCursor(self._index, budget), self)


class ConstraintState:
    """Where one generation stands in the constraint. Not thread-safe; cheap to ``copy()``."""

    __slots__ = ("_c", "constraint")

    def __init__(self, cursor, constraint: AnswerConstraint) -> None:
        self._c = cursor
        self.constraint = constraint

    @property
    def phase(self) -> str:
        """ "think" (free text), "answer" (constrained) or "done" (answer complete)."""
        return _PHASES[self._c.phase]

    @property
    def done(self) -> bool:
        """True once ``</answer>`` has been generated."""
        return self._c.phase == 2

    @property
    def think_tokens(self) -> int:
        """Tokens generated in the think phase so far."""
        return self._c.think_tokens

    def advance(self, token_id: int) -> None:
        """Record the generated token. Raises ``InputError`` if the constraint did not allow it."""
        if not self._c.advance(token_id):
            raise InputError(
                f"token {token_id} is not allowed here (phase {self.phase!r})",
                hint="sample from logits passed through apply() (or masked with mask()); "
                "append forced_ids() as they are",
            )

    def allowed(self, token_id: int) -> bool:
        """Whether ``token_id`` may come next (without advancing)."""
        return self._c.copy().advance(token_id)

    def mask(self, out: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask over the vocabulary (True = allowed); written into ``out`` when given."""
        if out is None:
            out = np.empty(self.constraint.vocab_size, dtype=np.bool_)
        self._c.fill_mask(out)
        return out

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Set the logits of disallowed tokens to -inf, in place; returns ``logits``.

        Takes a writeable numpy array of shape ``[vocab_size]`` or ``[1, vocab_size]``. float32/float64
        C-contiguous arrays are handled in C++; others through ``mask()``.
        """
        if not isinstance(logits, np.ndarray):
            raise InputError(f"logits must be a numpy array, got {type(logits).__name__}")
        row = logits[0] if logits.ndim == 2 and logits.shape[0] == 1 else logits
        if row.ndim != 1 or row.shape[0] != self.constraint.vocab_size:
            raise InputError(
                f"logits must have shape [{self.constraint.vocab_size}] or "
                f"[1, {self.constraint.vocab_size}], "
                f"got {list(logits.shape)}",
                hint="build the constraint with vocab_size= the model's logits width",
            )
        if row.dtype in (np.float32, np.float64) and row.flags.c_contiguous and row.flags.writeable:
            self._c.apply(row)
        else:
            row[~self.mask()] = -np.inf
        return logits

    def allowed_ids(self) -> np.ndarray:
        """Allowed token ids, ascending (int32)."""
        return self._c.allowed_ids()

    @property
    def allowed_count(self) -> int:
        return self._c.allowed_count

    def forced_ids(self) -> list[int]:
        """Tokens that spell the only possible continuation (empty when there is a choice). Append them
        all without sampling (jump-forward); each one must still be passed to ``advance``."""
        return self._c.forced_ids()

    def forced_text(self) -> str:
        """The only possible continuation as text ("" when there is a choice)."""
        return self._c.forced_text().decode("ascii")

    def copy(self) -> ConstraintState:
        return ConstraintState(self._c.copy(), self.constraint)
