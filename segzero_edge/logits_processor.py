"""The answer constraint as a ``transformers`` logits processor (for the torch reference backend).

torch is imported only when the processor runs, so importing this module stays torch-free. The class is
duck-typed (``transformers`` calls ``processor(input_ids, scores)``), so it does not import
``transformers`` either::

    constraint = AnswerConstraint.from_tokenizer(processor.tokenizer, vocab_size=model.config.vocab_size)
    out = model.generate(**inputs, logits_processor=[AnswerLogitsProcessor(constraint, thinking_budget=64)])
"""

from __future__ import annotations

from .answer_constraint import AnswerConstraint, ConstraintState
from .errors import InputError

__all__ = ["AnswerLogitsProcessor"]


class AnswerLogitsProcessor:
    """Masks ``scores`` so that each sequence of the batch ends with a valid Seg-Zero answer.

    The first call sees the prompt (its last token is not generated text); every later call advances
    each sequence's constraint state by the token generated since. Sequences whose answer is complete
    keep only end-of-sequence tokens allowed (generation pads finished rows; those tokens are ignored).
    Use one processor per ``generate`` call.
    """

    def __init__(self, constraint: AnswerConstraint, *, thinking_budget: int | type(...) | None = ...) -> None:
        self.constraint = constraint
        self.thinking_budget = thinking_budget
        self.states: list[ConstraintState] | None = None

    def __call__(self, input_ids, scores):
        import torch

        batch = input_ids.shape[0]
        if scores.shape[-1] != self.constraint.vocab_size:
            raise InputError(
                f"scores have {scores.shape[-1]} columns, the constraint masks {self.constraint.vocab_size}",
                hint="build the constraint with vocab_size=model.config.vocab_size",
            )
        if self.states is None:
            self.states = [self.constraint.new_state(self.thinking_budget) for _ in range(batch)]
        else:
            for state, token in zip(self.states, input_ids[:, -1].tolist()):
                if not state.done:
                    state.advance(token)
        for row, state in zip(scores, self.states):
            if row.device.type == "cpu" and row.dtype == torch.float32 and row.is_contiguous():
                state.apply(row.numpy())  # in place, no copy
            else:
                mask = torch.from_numpy(state.mask()).to(row.device)
                row.masked_fill_(~mask, float("-inf"))
        return scores
