"""One real-shaped export: Qwen2.5-VL-3B shapes (151936-token vocabulary, tied LM head, 2048 hidden, GQA 16/2),
one decoder layer, one vision block, 112x112 input; INT4 with the default block size 128."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")


@pytest.mark.slow
def test_3b_shaped_int4_export_validates(tmp_path):
    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner
    from segzero_edge.reasoner import GenerationOptions, ReasonerPipeline
    from segzero_edge.reference.builders.qwen import build_tiny_qwen25vl

    ckpt = build_tiny_qwen25vl(tmp_path / "ckpt", "3b", num_layers=1, vision_depth=1, input_size=112, dtype="bfloat16")
    m = export_reasoner(
        ckpt, tmp_path / "engine", ReasonerExportConfig(weights="int4", validate="quick", validation_tokens=8)
    )
    v = m.validation["reasoner"]
    assert v["greedy_identical_to_dequantized_torch"] == v["pairs"] == 2
    assert v["prompt_ids_identical"] == 2 and v["pixel_values_max_abs_diff"] == 0
    wb = m.component("reasoner")["decoder"]["weight_bytes"]
    # INT4 body: 0.5 byte per weight + one fp32 scale per 128 weights; INT8 tied LM head: 1 byte + scales
    body_params = 2048 * (2048 + 2 * 256 + 2048) + 3 * 2048 * 11008
    assert wb["body"] == pytest.approx(body_params * (0.5 + 4 / 128) + (2048 + 2 * 256) * 4, rel=1e-6)
    assert wb["lm_head"] == pytest.approx(151936 * 2048 * (1 + 4 / 128), rel=1e-6)
    r = ReasonerPipeline(tmp_path / "engine", device="cpu")
    res = r.generate(
        np.zeros((64, 64, 3), np.uint8),
        "the cup",
        GenerationOptions(max_new_tokens=80, constrained=True, thinking_budget=4),
    )
    assert res.stop_reason == "answer" and res.jump_forward_steps_saved > 0
