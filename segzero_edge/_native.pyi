"""Type stub of the C++ extension ``segzero_edge._native`` (csrc/bindings.cpp).

Private: use ``segzero_edge.answer`` (``decode_answer``, ``AnswerStream``) and
``segzero_edge.answer_constraint`` (``AnswerConstraint``), which check arguments and raise SDK errors.
"""

import numpy as np
import numpy.typing as npt

from .types import Answer, AnswerObject

__version__: str

Box = tuple[float, float, float, float]
Points = tuple[tuple[float, float], ...]
# (box, points, raw_box, raw_points, model_box, model_points): AnswerObject's fields, in order
RawObject = tuple[Box, Points, Box, Points, Box, Points]

def abi_version() -> int: ...
def decode(
    text: str, image_w: float, image_h: float, model_w: float, model_h: float
) -> tuple[bool, str | None, str | None, tuple[RawObject, ...]]:
    """(ok, error, think, objects); raises ValueError for sizes that are not positive and finite."""

def decode_answer(text: str, image_w: float, image_h: float, model_w: float, model_h: float) -> Answer:
    """``decode`` wrapped into the classes registered with ``set_result_types``."""

def set_result_types(answer_cls: type[Answer], object_cls: type[AnswerObject], fast: bool) -> None: ...

class AnswerStream:
    def __init__(self) -> None: ...
    def feed(self, piece: str) -> bool: ...
    def reset(self) -> None: ...
    @property
    def done(self) -> bool: ...
    @property
    def phase(self) -> int:
        """0 pre, 1 think, 2 after think, 3 answer, 4 done."""
    @property
    def reason(self) -> int:
        """0 none, 1 answer closed."""
    @property
    def consumed_bytes(self) -> int: ...

class ConstraintIndex:
    def __init__(
        self,
        tokens: list[bytes],
        model_w: int,
        model_h: int,
        vocab_size: int,
        eos_ids: list[int],
        banned_ids: list[int],
        max_pre_answer_ws: int,
        grammar: int = 0,
        max_objects: int = 1,
        min_objects: int = 1,
    ) -> None:
        """grammar: 0 seg_zero, 1 vision_reasoner (a list of min_objects..max_objects objects; min 0 or 1).
        Raises ValueError for invalid options or a vocabulary that cannot spell the answer."""
    @property
    def vocab_size(self) -> int: ...
    @property
    def num_tokens(self) -> int: ...
    @property
    def num_states(self) -> int: ...

class ConstraintCursor:
    def __init__(self, index: ConstraintIndex, thinking_budget: int) -> None:
        """thinking_budget < 0: no budget."""
    def advance(self, token: int) -> bool: ...
    def copy(self) -> ConstraintCursor: ...
    def fill_mask(self, out: npt.NDArray[np.bool_] | npt.NDArray[np.uint8]) -> None: ...
    def apply(self, logits: npt.NDArray[np.float32] | npt.NDArray[np.float64]) -> None: ...
    def allowed_ids(self) -> npt.NDArray[np.int32]: ...
    @property
    def allowed_count(self) -> int: ...
    def forced_ids(self) -> list[int]: ...
    def forced_text(self) -> bytes: ...
    @property
    def phase(self) -> int:
        """0 think, 1 answer, 2 done."""
    @property
    def state(self) -> int: ...
    @property
    def think_tokens(self) -> int: ...
    @property
    def thinking_budget(self) -> int: ...
