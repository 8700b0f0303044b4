"""Answer decoding: the reasoning model's text -> boxes and points in original-image pixels.

``decode_answer`` runs the native decoder (``segzero_edge._native``, C++) or, when the extension is
missing or ``SEGZERO_EDGE_PURE_PYTHON=1`` was set before import, its pure-Python twin
(``segzero_edge._answer_py``), which behaves identically. The rules (which text is read, which keys,
how numbers are rounded, what fails) are documented once, in ``csrc/core/answer_decoder.hpp``.

Coordinate conventions: the model writes pixels of its input image (``model_size``, 840x840 for
Seg-Zero); results are pixels of the original image (``image_size``), x right, y down, origin at the
top-left corner of the top-left pixel. ``AnswerObject.raw_box``/``raw_points`` hold the official
parser's numbers (rescaled and rounded, before reordering and clipping); ``box``/``points`` are then
reordered (x1 <= x2, y1 <= y2) and clipped to ``[0, W] x [0, H]``; ``model_box``/``model_points`` are
the numbers as written.

``AnswerStream`` says, piece by piece during generation, when the answer is complete.
"""

from __future__ import annotations

import logging
import operator
import os
import warnings
from collections.abc import Sequence

from ..prompt import SEG_ZERO_INPUT_SIZE
from ..types import Answer, AnswerObject
from . import _answer_py, _stream_py

__all__ = ["BACKEND", "EMPTY_ANSWER", "AnswerStream", "decode_answer"]

logger = logging.getLogger(__name__)

#: Environment variable that selects the pure-Python twin when set (to anything but "" or "0") before import.
PURE_PYTHON_ENV = "SEGZERO_EDGE_PURE_PYTHON"
#: Interface version of the native module this wrapper expects (``_native.abi_version()``).
NATIVE_ABI = 5
#: ``Answer.error`` of an answer that is an empty list: a VisionReasoner model saying nothing matches.
EMPTY_ANSWER = _answer_py.EMPTY_LIST
#: Longer texts are not decoded (ok=False): a model answer is a few kB; this bounds the work.
MAX_TEXT_CHARS = 1 << 24
_MAX_SIZE = (1 << 31) - 1


def _load_native():
    if os.environ.get(PURE_PYTHON_ENV, "").strip() not in ("", "0"):
        logger.info("%s is set: using the pure-Python answer decoder", PURE_PYTHON_ENV)
        return None
    try:
        from .. import _native
    except ImportError as exc:
        reason = str(exc)
    else:
        abi = getattr(_native, "abi_version", lambda: 0)()
        if abi == NATIVE_ABI:
            return _native
        reason = f"it has interface version {abi}, this package needs {NATIVE_ABI} (a stale build)"
    warnings.warn(
        f"segzero_edge._native is not usable ({reason}); falling back to the pure-Python answer decoder, "
        "which gives the same results but is much slower. Rebuild the extension: `make install` "
        "(or `pip install --no-build-isolation -e .`).",
        RuntimeWarning,
        stacklevel=3,
    )
    return None


def _build_answer(raw: tuple, text: str) -> Answer:
    """``Answer`` from a raw ``(ok, error, think, objects)`` decode result."""
    ok, error, think, objs = raw
    if not ok:
        return Answer(ok=False, think=think, error=error, raw_text=text)
    objects = tuple(AnswerObject(*o) for o in objs)
    first = objects[0]
    return Answer(ok=True, box=first.box, points=first.points, think=think, objects=objects, raw_text=text)


def _python_decode_answer(text: str, w: int, h: int, mw: int, mh: int) -> Answer:
    return _build_answer(_answer_py.decode(text, w, h, mw, mh), text)


def _can_fill_directly(cls: type, names: tuple[str, ...]) -> bool:
    """True when building ``cls`` by filling its ``__dict__`` is what its ``__init__`` would do."""
    fields = getattr(cls, "__dataclass_fields__", None)
    return (
        fields is not None
        and tuple(fields) == names
        and not hasattr(cls, "__post_init__")
        and "__slots__" not in cls.__dict__
    )


_native = _load_native()
#: Which implementation ``decode_answer`` and ``AnswerStream`` use: "native" or "python".
BACKEND = "native" if _native is not None else "python"
# name -> decode function returning an Answer; both present when the extension is built (tests and
# benchmarks compare them). The raw tuple functions are ``_native.decode`` / ``_answer_py.decode``.
_BACKENDS = {"python": _python_decode_answer}
if _native is not None:
    _native.set_result_types(
        Answer,
        AnswerObject,
        _can_fill_directly(Answer, ("ok", "box", "points", "think", "error", "objects", "raw_text"))
        and _can_fill_directly(AnswerObject, ("box", "points", "raw_box", "raw_points", "model_box", "model_points")),
    )
    _BACKENDS["native"] = _native.decode_answer
_decode = _BACKENDS[BACKEND]
_DEFAULT_MODEL_SIZE = (SEG_ZERO_INPUT_SIZE, SEG_ZERO_INPUT_SIZE)


def _dimension(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, got {type(value).__name__} ({value!r})") from None
    if v <= 0 or v > _MAX_SIZE:
        raise ValueError(f"{what} must be a positive number of pixels, got {v}")
    return v


def _size_pair(size: object, name: str, *, allow_int: bool) -> tuple[int, int]:
    expected = "an int or a (width, height) pair" if allow_int else "a (width, height) pair"
    if isinstance(size, (str, bytes, bytearray, bool)):
        raise TypeError(f"{name} must be {expected}, got {type(size).__name__}")
    if not hasattr(size, "__len__"):
        if allow_int and hasattr(size, "__index__"):
            side = _dimension(size, name)
            return side, side
        raise TypeError(f"{name} must be {expected}, got {type(size).__name__}")
    if len(size) != 2:
        raise ValueError(f"{name} must have 2 entries (width, height), got {len(size)}")
    return _dimension(size[0], f"{name}[0] (width)"), _dimension(size[1], f"{name}[1] (height)")


def decode_answer(
    text: str,
    image_size: Sequence[int] | None = None,
    model_size: int | Sequence[int] = _DEFAULT_MODEL_SIZE,
) -> Answer:
    """Decode the reasoning model's output into an ``Answer``.

    Args:
        text: the generated text, e.g. ``'<think>...</think><answer>{"bbox": [...], "points_1": [...],
            "points_2": [...]}</answer>'`` (Seg-Zero) or a JSON list of ``{"bbox_2d": [...], "point_2d":
            [...]}`` objects (VisionReasoner).
        image_size: ``(width, height)`` of the original image in pixels; ``None`` keeps model pixels.
        model_size: the model input size in pixels, ``(width, height)`` or one int for a square input
            (Seg-Zero: 840; read it from the checkpoint or manifest for other models).

    Returns:
        An ``Answer``. It never raises on model output: anything malformed, truncated, non-finite or
        out of range gives ``ok=False`` with ``error`` saying what was wrong.

    Raises:
        TypeError: ``text`` is not a str, or a size is not an int / pair of ints.
        ValueError: a size has the wrong number of entries or is not positive.
    """
    if not isinstance(text, str):
        hint = " (decode bytes with .decode('utf-8') first)" if isinstance(text, (bytes, bytearray)) else ""
        raise TypeError(f"text must be a str, got {type(text).__name__}{hint}")
    # Fast path for the usual call (plain int tuple, default model size): this runs once per frame.
    if model_size is _DEFAULT_MODEL_SIZE:
        mw = mh = SEG_ZERO_INPUT_SIZE
    else:
        mw, mh = _size_pair(model_size, "model_size", allow_int=True)
    if image_size is None:
        w, h = mw, mh
    elif (
        type(image_size) is tuple
        and len(image_size) == 2
        and type(image_size[0]) is int
        and type(image_size[1]) is int
        and 0 < image_size[0] <= _MAX_SIZE
        and 0 < image_size[1] <= _MAX_SIZE
    ):
        w, h = image_size
    else:
        w, h = _size_pair(image_size, "image_size", allow_int=False)
    if len(text) > MAX_TEXT_CHARS:
        return Answer(ok=False, error=f"the text is too long to be an answer ({len(text)} characters)", raw_text=text)
    return _decode(text, w, h, mw, mh)


_PHASES = ("pre", "think", "after_think", "answer", "done")
_REASONS = (None, "answer_closed")


class AnswerStream:
    """Incremental answer detection: feed text pieces as tokens arrive; ``feed`` returns True as soon as
    the answer is complete, so generation can stop there.

    The answer is complete at ``</answer>``. Tags may be split across pieces anywhere. The rules match
    ``decode_answer`` (see ``csrc/core/answer_stream.hpp``).

    Example::

        stream = AnswerStream()
        for piece in pieces:             # decoded text of each new token
            if stream.feed(piece):
                break
        answer = stream.answer(image_size=(w, h))
    """

    __slots__ = ("_impl", "_pieces")

    def __init__(self) -> None:
        cls = _native.AnswerStream if _native is not None else _stream_py.AnswerStream
        self._impl = cls()
        self._pieces: list[str] = []

    def feed(self, piece: str) -> bool:
        """Consume one piece of generated text; True once the answer is complete."""
        if type(piece) is not str:
            raise TypeError(f"piece must be a str, got {type(piece).__name__}")
        self._pieces.append(piece)
        return self._impl.feed(piece)

    @property
    def done(self) -> bool:
        """True once the answer is complete."""
        return self._impl.done

    @property
    def phase(self) -> str:
        """ "pre", "think", "after_think", "answer" or "done"."""
        return _PHASES[self._impl.phase]

    @property
    def reason(self) -> str | None:
        """Why the stream is done: "answer_closed", or None while not done."""
        return _REASONS[self._impl.reason]

    @property
    def text(self) -> str:
        """All text fed so far."""
        if len(self._pieces) > 1:
            self._pieces[:] = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    def answer(
        self,
        image_size: Sequence[int] | None = None,
        model_size: int | Sequence[int] = _DEFAULT_MODEL_SIZE,
    ) -> Answer:
        """``decode_answer`` of the text fed so far."""
        return decode_answer(self.text, image_size, model_size)

    def reset(self) -> None:
        """Start over for a new generation."""
        self._impl.reset()
        self._pieces.clear()
