"""End to end: generation under the answer constraint always yields an answer that decodes.

* 1,000 generations with random logits over the Qwen-like vocabulary (numpy loop, as the ONNX
  Runtime runtime does it, with and without jump-forward of forced tokens);
* a tiny random ``transformers`` Qwen2 model generating through the torch oracle's logits processor.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from segzero_edge import decode_answer
from segzero_edge.answer import AnswerStream

from .conftest import needs_native

pytestmark = needs_native


def _generate(constraint, rng: np.random.Generator, *, budget, jump_forward: bool, max_steps: int = 400):
    """Sample with random logits (Gumbel-max over the masked logits); returns the token ids."""
    state = constraint.new_state(budget)
    ids: list[int] = []
    logits = np.empty(constraint.vocab_size, dtype=np.float32)
    for _ in range(max_steps):
        if state.done:
            return ids, state
        if jump_forward:
            forced = state.forced_ids()
            for t in forced:
                state.advance(t)
                ids.append(t)
            if forced:
                continue
        logits[:] = rng.normal(0.0, 3.0, size=logits.shape)
        state.apply(logits)
        t = int(np.argmax(logits + rng.gumbel(size=logits.shape).astype(np.float32)))
        state.advance(t)
        ids.append(t)
    raise AssertionError("generation did not finish")


def test_1000_random_logit_generations_all_decode(qwen_constraint, qwen_tokenizer):
    rng = np.random.default_rng(0)
    pyrng = random.Random(0)
    model_values = []
    for k in range(1000):
        budget = pyrng.choice([0, 1, 5, 20, 40])
        ids, state = _generate(qwen_constraint, rng, budget=budget, jump_forward=k % 2 == 0)
        text = qwen_tokenizer.decode(ids, skip_special_tokens=False)
        w, h = pyrng.randrange(1, 4000), pyrng.randrange(1, 4000)
        answer = decode_answer(text, (w, h))
        assert answer.ok, (text, answer.error)
        assert len(answer.objects) == 1 and len(answer.points) == 2
        assert all(0 <= v <= 840 for v in answer.objects[0].model_box)
        model_values.extend(answer.objects[0].model_box)
        # the stream, fed token by token, finishes exactly at the last token
        stream = AnswerStream()
        done_at = [stream.feed(qwen_tokenizer.decode([t], skip_special_tokens=False)) for t in ids]
        assert done_at[-1] and not any(done_at[:-1]), text
        assert state.think_tokens <= budget
    # random logits reach the whole range, including both ends
    assert min(model_values) == 0 and max(model_values) >= 800


@pytest.mark.slow
def test_transformers_logits_processor_with_a_tiny_model(qwen_constraint, qwen_tokenizer):
    """The constraint as the torch oracle applies it (``constraint_logits_processor``) in transformers'
    sampling ``generate``: every sampled answer parses and generation stops right after it."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from segzero_edge.answer.constraint import AnswerConstraint
    from segzero_edge.reference.torch_reasoner import constraint_logits_processor

    vocab_size = qwen_tokenizer.get_vocab_size() + 10  # the model's logits are wider than the vocabulary
    constraint = AnswerConstraint.from_tokenizer(qwen_tokenizer, vocab_size=vocab_size)
    torch.manual_seed(0)
    config = transformers.Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
    )
    model = transformers.Qwen2ForCausalLM(config).eval()
    eos = qwen_tokenizer.token_to_id("<|im_end|>")
    prompt = torch.tensor([qwen_tokenizer.encode("<|im_start|>assistant\n<think>").ids])
    for seed in range(3):
        torch.manual_seed(seed)
        state = constraint.new_state(thinking_budget=12)
        out = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=True,
            max_new_tokens=200,
            logits_processor=transformers.LogitsProcessorList([constraint_logits_processor(state, prompt.shape[1])]),
            eos_token_id=eos,
            pad_token_id=eos,
        )
        row = out[0, prompt.shape[1] :].tolist()
        text = qwen_tokenizer.decode(row, skip_special_tokens=True)
        answer = decode_answer(text, (640, 480))
        assert answer.ok, (text, answer.error)
        assert text.endswith("</answer>") and row[-1] == eos  # stopped right after the answer
        assert state.done and state.think_tokens <= 12
