"""The streamed ONNX decoder equals transformers' Qwen2.5-VL language model, with its KV cache."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import onnx
import onnxruntime as ort
import torch

from segzero_edge.errors import ConfigError
from segzero_edge.export.reasoner_export.checkpoint import WeightReader, inspect_checkpoint
from segzero_edge.export.reasoner_export.decoder_graph import DecoderPrecision, build_decoder
from segzero_edge.export.reasoner_export.dequantized import dequantized_linears
from segzero_edge.export.reasoner_export.quantize import QuantSpec
from segzero_edge.export.reasoner_export.wrappers import rotary_inv_freq
from segzero_edge.reasoner import contract as reasoner_contract


def _build(ckpt_dir, tmp_path, body, head, accuracy_level=0, int8_layers=()):
    ckpt = inspect_checkpoint(ckpt_dir)
    reader = WeightReader(ckpt.weight_files)
    precision = DecoderPrecision(
        body, head, QuantSpec(block_size=32, accuracy_level=accuracy_level), int8_layers=int8_layers
    )
    info = build_decoder(ckpt.text, reader.get, rotary_inv_freq(ckpt.config), precision, tmp_path)
    onnx.checker.check_model(str(tmp_path / info["file"]))
    sess = ort.InferenceSession(str(tmp_path / info["file"]), providers=["CPUExecutionProvider"])
    return ckpt, sess, info


def _feeds(ckpt, embeds, positions, past, mask=None):
    total = (past[0].shape[2] if past else 0) + embeds.shape[1]
    feeds = {
        reasoner_contract.INPUTS_EMBEDS: embeds,
        reasoner_contract.POSITION_IDS: positions,
        reasoner_contract.ATTENTION_MASK: np.ones((1, total), np.int64) if mask is None else mask,
    }
    t = ckpt.text
    for j, name in enumerate(reasoner_contract.kv_names(t.num_layers)[0]):
        feeds[name] = past[j] if past else np.zeros((1, t.num_kv_heads, 0, t.head_dim), np.float32)
    return feeds


def _hf_steps(model, chunks):
    """transformers: logits of the last position after each chunk of (embeds, positions), with its cache."""
    from transformers import DynamicCache

    lm = model.model.language_model
    cache = DynamicCache(config=lm.config)
    out, seen = [], 0
    with torch.no_grad():
        for embeds, positions in chunks:
            seen += embeds.shape[1]
            h = lm(
                inputs_embeds=torch.from_numpy(embeds),
                position_ids=torch.from_numpy(positions),
                attention_mask=torch.ones(1, seen, dtype=torch.long),
                past_key_values=cache,
                use_cache=True,
            ).last_hidden_state
            out.append(model.lm_head(h)[0, -1].numpy())
    return out, cache


def _chunks(hidden, seed=0):
    rng = np.random.default_rng(seed)
    lens = [11, 3, 1]  # prefill, a jump-forward of 3 tokens, one token
    chunks, start = [], 0
    for n in lens:
        pos = np.stack(
            [np.arange(start, start + n), np.arange(start, start + n) // 2, np.arange(start, start + n) % 4]
        )[:, None, :].astype(np.int64)
        chunks.append((rng.standard_normal((1, n, hidden)).astype(np.float32), pos))
        start += n
    return chunks


def _run_graph(ckpt, sess, chunks):
    outs, past = [], None
    for embeds, positions in chunks:
        res = sess.run(None, _feeds(ckpt, embeds, positions, past))
        outs.append(res[0][0])
        past = res[1:]
    return outs, past


def test_fp32_decoder_equals_transformers_with_kv_cache(tiny_qwen_dir, tiny_model, tmp_path):
    ckpt, sess, info = _build(tiny_qwen_dir, tmp_path, "fp32", "fp32")
    chunks = _chunks(ckpt.text.hidden_size)
    ours, past = _run_graph(ckpt, sess, chunks)
    ref, cache = _hf_steps(tiny_model, chunks)
    for a, b in zip(ours, ref):
        assert a.shape == (ckpt.text.vocab_size,)
        assert np.abs(a - b).max() < 1e-5
    assert np.abs(past[0] - cache.layers[0].keys.numpy()).max() < 1e-5
    assert np.abs(past[-1] - cache.layers[-1].values.numpy()).max() < 1e-5
    assert info["weight_bytes"]["lm_head"] == ckpt.text.vocab_size * ckpt.text.hidden_size * 4


def test_masked_placeholder_slot_changes_nothing(tiny_qwen_dir, tmp_path):
    """The runtime starts the cache with one masked zero slot (TensorRT needs past >= 1)."""
    ckpt, sess, _ = _build(tiny_qwen_dir, tmp_path, "fp32", "fp32")
    embeds, positions = _chunks(ckpt.text.hidden_size)[0]
    plain = sess.run(None, _feeds(ckpt, embeds, positions, None))[0]
    t = ckpt.text
    slot = [
        np.random.default_rng(0).standard_normal((1, t.num_kv_heads, 1, t.head_dim)).astype(np.float32)
        for _ in range(2 * t.num_layers)
    ]
    mask = np.ones((1, embeds.shape[1] + 1), np.int64)
    mask[0, 0] = 0
    masked = sess.run(None, _feeds(ckpt, embeds, positions, slot, mask))[0]
    assert np.abs(plain - masked).max() < 1e-5


@pytest.mark.parametrize(
    ("body", "head", "int8_layers"),
    [("int4", "int8", ()), ("int8", "int8", ()), ("fp16", "fp16", ()), ("int4", "int4", ()), ("int4", "int8", (0,))],
)
def test_quantized_decoder_equals_transformers_with_dequantized_weights(
    tiny_qwen_dir, tiny_model, tmp_path, body, head, int8_layers
):
    import copy

    ckpt, sess, info = _build(tiny_qwen_dir, tmp_path, body, head, int8_layers=int8_layers)
    model = copy.deepcopy(tiny_model)
    lm = model.model.language_model
    linears = list(dequantized_linears(tmp_path, info["file"]))
    assert len(linears) == 7 * ckpt.text.num_layers + 1
    assert {p for _, _, p in linears} == {body, head}
    for name, _, p in linears:  # the listed layers are INT8, the others as the body
        if name != "lm_head":
            assert p == ("int8" if int(name.split(".")[1]) in int8_layers else body), name
    with torch.no_grad():
        for name, w, _ in linears:
            if name == "lm_head":
                model.lm_head.weight = torch.nn.Parameter(torch.from_numpy(w))
            else:
                _, i, block, proj = name.split(".")
                getattr(getattr(lm.layers[int(i)], block), proj).weight.copy_(torch.from_numpy(w))
    chunks = _chunks(ckpt.text.hidden_size, seed=1)
    ours, _ = _run_graph(ckpt, sess, chunks)
    ref, _ = _hf_steps(model, chunks)
    fp32, _ = _hf_steps(tiny_model, chunks)
    for a, b, c in zip(ours, ref, fp32):
        assert np.abs(a - b).max() < 1e-4  # the graph computes exactly with its dequantized weights
        assert np.abs(a - c).max() > 1e-6  # and the weights really were quantized


def test_unsupported_precision_is_named():
    with pytest.raises(ConfigError, match="int3"):
        DecoderPrecision("int3", "fp32")


def test_int8_layers_are_validated(tiny_qwen_dir, tmp_path):
    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig

    with pytest.raises(ConfigError, match="only applies to int4"):
        DecoderPrecision("int8", "int8", int8_layers=(0,))
    with pytest.raises(ConfigError, match="distinct layer indices"):
        DecoderPrecision("int4", "int8", int8_layers=(0, 0))
    with pytest.raises(ConfigError, match="distinct layer indices"):
        ReasonerExportConfig(weights="int4", int8_layers=(-1,))
    assert ReasonerExportConfig(weights="int4", int8_layers=[1]).decoder_precision().layer(1) == "int8"
    with pytest.raises(ConfigError, match="does not have"):
        _build(tiny_qwen_dir, tmp_path, "int4", "int8", int8_layers=(99,))


def test_streamed_reference_model_equals_from_pretrained(tiny_qwen_dir, tiny_model):
    from segzero_edge.export.reasoner_export.wrappers import load_reference_model

    ckpt = inspect_checkpoint(tiny_qwen_dir)
    model = load_reference_model(ckpt.config, WeightReader(ckpt.weight_files))
    ref = tiny_model.state_dict()
    got = model.state_dict()
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert torch.equal(got[k], v), k
    assert all(p.dtype == torch.float32 for p in model.parameters())
