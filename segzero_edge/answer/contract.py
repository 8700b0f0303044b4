"""The answer contract: what the reasoning model writes and how the engine directory describes it.

The model writes ``<think>...</think><answer>JSON</answer>`` with coordinates in pixels of its square
input image (``model_size``); the grammar of the JSON is the model family's (``segzero_edge.prompt.FAMILIES``):

* ``"seg_zero"``: one object, ``{"bbox": [x1, y1, x2, y2], "points_1": [x, y], "points_2": [x, y]}``.
* ``"vision_reasoner"``: a JSON list of ``{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}`` objects;
  ``[]`` means that nothing matches.

The rules of decoding (which text is read, which keys, how numbers round, what fails) are documented once,
in ``csrc/core/answer_decoder.hpp``. The exporter records ``AnswerSettings`` under the reasoner component
(``components["reasoner"]["answer"]``); engines written before that record get the Seg-Zero grammar at the
reasoner's input size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import EngineIncompatibleError
from ..prompt import FAMILIES, SEG_ZERO, VISION_REASONER

#: Version of the ``answer`` settings below; the runtime refuses another.
ANSWER_FORMAT = 1

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

#: One grammar per model family, named after it.
GRAMMARS = FAMILIES
#: The keys of each grammar's answer object: box first, then the points in order.
KEYS: Mapping[str, tuple[str, ...]] = {
    SEG_ZERO: ("bbox", "points_1", "points_2"),
    VISION_REASONER: ("bbox_2d", "point_2d"),
}


@dataclass(frozen=True)
class AnswerSettings:
    """How to read the reasoner's answers.

    Attributes:
        grammar: one of ``GRAMMARS``.
        model_size: ``(width, height)`` in pixels of the model input the coordinates refer to.
        format: ``ANSWER_FORMAT``.
    """

    grammar: str
    model_size: tuple[int, int]
    format: int = ANSWER_FORMAT

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_size", tuple(int(v) for v in self.model_size))
        problems = []
        if self.format != ANSWER_FORMAT:
            problems.append(f"format {self.format!r} is not {ANSWER_FORMAT}")
        if self.grammar not in GRAMMARS:
            problems.append(f"grammar {self.grammar!r} is not one of {GRAMMARS}")
        if len(self.model_size) != 2 or min(self.model_size) < 1:
            problems.append(f"model_size {list(self.model_size)} must be two positive ints")
        if problems:
            raise EngineIncompatibleError(
                "invalid answer settings in the manifest: " + "; ".join(problems),
                hint="re-export the reasoner with this segzero-edge",
            )

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "grammar": self.grammar, "model_size": list(self.model_size)}

    @classmethod
    def from_reasoner(cls, reasoner: Mapping[str, Any]) -> AnswerSettings:
        """From the reasoner component's settings (``answer`` entry, else Seg-Zero at its input size)."""
        data = reasoner.get("answer")
        if data is None:
            size = int(reasoner["input_size"])
            return cls(grammar=SEG_ZERO, model_size=(size, size))
        try:
            return cls(grammar=str(data["grammar"]), model_size=tuple(data["model_size"]), format=data["format"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EngineIncompatibleError(
                f"the manifest's answer settings are incomplete: {exc}",
                hint="re-export the reasoner with this segzero-edge",
            ) from exc
