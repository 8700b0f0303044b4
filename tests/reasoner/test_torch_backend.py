"""The torch reference backend: transformers generate with our prompt, streaming, quanto INT8/INT4."""

from __future__ import annotations

import numpy as np
import pytest

from segzero_edge.errors import InputError
from segzero_edge.reasoner import GenerationOptions

pytest.importorskip("torch")

from segzero_edge.export.reasoner_export.validate import validation_samples
from segzero_edge.reference.torch_reasoner import TorchReasoner

IMAGE, QUESTION = validation_samples(1)[0]


def test_generate_streams_and_reports(tiny_qwen_dir, tiny_model):
    r = TorchReasoner(tiny_qwen_dir, model=tiny_model)
    pieces = []
    res = r.generate(IMAGE, QUESTION, GenerationOptions(max_new_tokens=15, stop_at_answer=False), on_text=pieces.append)
    assert len(res.token_ids) == 15 and res.stop_reason == "max_new_tokens"
    assert "".join(pieces) == res.text == r.tokenizer.decode(list(res.token_ids), skip_special_tokens=True)
    assert res.input_size == 112 and res.image_size == (640, 480)


def test_teacher_forcing_reproduces_generate_logits(tiny_qwen_dir, tiny_model):
    r = TorchReasoner(tiny_qwen_dir, model=tiny_model)
    res = r.generate(IMAGE, QUESTION, GenerationOptions(max_new_tokens=10, stop_at_answer=False), output_logits=True)
    forced = r.teacher_forced_logits(IMAGE, QUESTION, list(res.token_ids))
    assert forced.shape == r.last_logits.shape
    assert np.abs(forced - r.last_logits).max() < 1e-4


@pytest.mark.parametrize("weights", ["int8", "int4"])
def test_quanto_weights(tiny_qwen_dir, tiny_model, weights):
    pytest.importorskip("optimum.quanto")
    from optimum.quanto import QLinear

    from segzero_edge.reference.qwen import load_qwen_model

    q = TorchReasoner(tiny_qwen_dir, model=load_qwen_model(tiny_qwen_dir), weights=weights)
    assert isinstance(q.model.model.language_model.layers[0].mlp.up_proj, QLinear)
    assert not isinstance(q.model.model.visual.blocks[0].mlp.up_proj, QLinear)  # vision stays float
    ref = TorchReasoner(tiny_qwen_dir, model=tiny_model)
    res = ref.generate(IMAGE, QUESTION, GenerationOptions(max_new_tokens=12, stop_at_answer=False), output_logits=True)
    got = q.teacher_forced_logits(IMAGE, QUESTION, list(res.token_ids))
    rel = np.sqrt(np.mean((got - ref.last_logits) ** 2) / np.mean(ref.last_logits**2))
    assert 0 < rel < (0.05 if weights == "int8" else 0.3)


def test_unknown_weights_are_refused(tiny_qwen_dir, tiny_model):
    with pytest.raises(InputError, match="int3"):
        TorchReasoner(tiny_qwen_dir, model=tiny_model, weights="int3")
