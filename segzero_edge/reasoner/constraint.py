"""The answer constraint (``segzero_edge.answer_constraint``, native) behind the loop's ``TokenConstraint``.

``AnswerConstraint`` is built once per tokenizer and model input size (it indexes the vocabulary: about a
second for Qwen's 151k tokens) and shared; each generation gets a fresh ``ConstraintState`` with its
thinking budget. Both the ONNX Runtime ``Reasoner`` and the torch reference backend use this adapter, so
they apply the very same constraint.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..answer_constraint import AnswerConstraint, ConstraintState
from .generate import GenerationOptions


class AnswerConstraintAdapter:
    """``TokenConstraint`` over one ``ConstraintState`` (mask, forced tokens for jump-forward, advance)."""

    def __init__(self, state: ConstraintState):
        self.state = state
        self._mask = np.empty(state.constraint.vocab_size, dtype=np.bool_)

    def allowed(self) -> np.ndarray:
        return self.state.mask(self._mask)

    def forced(self) -> Sequence[int]:
        return self.state.forced_ids()

    def advance(self, token_id: int) -> None:
        self.state.advance(int(token_id))


class AnswerConstraintFactory:
    """Builds the answer constraint lazily (first constrained request), then one adapter per generation.

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` or a transformers fast tokenizer.
        vocab_size: width of the model's logits (the embedding rows, >= the tokenizer's size).
        input_size: the model's square input size (answer integers lie in ``[0, input_size]``).
    """

    def __init__(self, tokenizer, *, vocab_size: int, input_size: int):
        self.tokenizer, self.vocab_size, self.input_size = tokenizer, int(vocab_size), int(input_size)
        self._constraint: AnswerConstraint | None = None

    @property
    def constraint(self) -> AnswerConstraint:
        if self._constraint is None:
            self._constraint = AnswerConstraint.from_tokenizer(
                self.tokenizer, model_size=self.input_size, vocab_size=self.vocab_size
            )
        return self._constraint

    def __call__(self, options: GenerationOptions) -> AnswerConstraintAdapter:
        return AnswerConstraintAdapter(self.constraint.new_state(options.thinking_budget))
