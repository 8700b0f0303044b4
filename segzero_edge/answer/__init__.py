"""The answer component: the text the reasoning model writes -> boxes and points; the token-level constraint.

* ``contract``: the tags, the grammars and the ``AnswerSettings`` an engine directory records.
* ``decode``: ``decode_answer`` (native C++, with a pure-Python twin) and ``AnswerStream``, which says
  during generation when the answer is complete.
* ``constraint``: ``AnswerConstraint`` / ``ConstraintState``, the token-level answer constraint with
  jump-forward and a thinking budget (native).
"""

from .constraint import AnswerConstraint, ConstraintState
from .contract import ANSWER_FORMAT, AnswerSettings
from .decode import BACKEND, EMPTY_ANSWER, AnswerStream, decode_answer

__all__ = [
    "ANSWER_FORMAT",
    "BACKEND",
    "EMPTY_ANSWER",
    "AnswerConstraint",
    "AnswerSettings",
    "AnswerStream",
    "ConstraintState",
    "decode_answer",
]
