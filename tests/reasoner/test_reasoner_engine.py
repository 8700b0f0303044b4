"""The torch-free ReasonerPipeline on exported tiny engines, against transformers generate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segzero_edge.errors import BackendUnavailableError, InputError, ManifestError
from segzero_edge.manifest import load_manifest
from segzero_edge.reasoner import GenerationOptions, ReasonerPipeline

pytest.importorskip("torch")


from segzero_edge.export.reasoner_export.dequantized import load_engine_weights_into
from segzero_edge.export.reasoner_export.validate import validation_samples
from segzero_edge.reasoner import contract as reasoner_contract
from segzero_edge.reference.torch_reasoner import TorchReasoner

PAIRS = validation_samples(5)
GREEDY = GenerationOptions(max_new_tokens=20, constrained=False, stop_at_answer=False)
CONSTRAINED = GenerationOptions(max_new_tokens=160, constrained=True, thinking_budget=10)


@pytest.fixture(scope="module")
def torch_ref(tiny_qwen_dir, tiny_model):
    return TorchReasoner(tiny_qwen_dir, model=tiny_model)


@pytest.fixture(scope="module")
def fp32(engine_fp32):
    return ReasonerPipeline(engine_fp32, device="cpu", threads=1)


def test_fp32_greedy_is_token_identical_to_transformers(fp32, torch_ref):
    for image, question in PAIRS:
        ours = fp32.generate(image, question, GREEDY)
        ref = torch_ref.generate(image, question, GREEDY)
        assert len(ours.token_ids) == 20
        assert ours.token_ids == ref.token_ids, question
        assert ours.text == ref.text
        assert ours.prompt_tokens == ref.prompt_tokens


def test_prompt_ids_equal_the_transformers_processor(fp32, torch_ref):
    for image, question in PAIRS[:3]:
        ids = fp32.tokenizer.encode_prompt(question, fp32.settings.num_image_tokens)
        assert np.array_equal(ids, torch_ref.inputs(image, question).input_ids[0].numpy())


@pytest.mark.parametrize(("bits", "max_rel"), [("int4", 0.2), ("int8", 0.02)])
def test_quantized_agreement_and_dequantized_identity(bits, max_rel, request, torch_ref, tiny_qwen_dir):
    """INT4/INT8 vs transformers fp32 (teacher-forced top-1 and logit error, also as recorded in the manifest),
    and token identity with transformers carrying the engine's dequantized weights, with and without the
    answer constraint, on 5 pairs."""
    from segzero_edge.reference.qwen import load_qwen_model

    engine = request.getfixturevalue(f"engine_{bits}")
    ours_r = ReasonerPipeline(engine, device="cpu", threads=1)
    top1, rel = [], []
    for image, question in PAIRS:
        ref = torch_ref.generate(image, question, GREEDY, output_logits=True)
        ours = ours_r.teacher_forced_logits(image, question, list(ref.token_ids))
        top1.append(np.mean(ours.argmax(-1) == torch_ref.last_logits.argmax(-1)))
        rel.append(np.sqrt(np.mean((ours - torch_ref.last_logits) ** 2) / np.mean(torch_ref.last_logits**2)))
    assert 0 < np.mean(rel) < max_rel and np.mean(top1) >= 0.6  # quantized, but close
    v = ours_r.manifest.validation["reasoner"]
    assert v["weights"] == bits and 0.6 <= v["top1_agreement_vs_fp32"] <= 1
    assert 0 < v["logits_rel_rms_err"] < max_rel and v["logits_max_abs_err"] > 0
    assert v["greedy_identical_to_dequantized_torch"] == v["pairs"]
    assert v["constrained_identical_to_dequantized_torch"] == v["pairs"]
    model = load_qwen_model(tiny_qwen_dir, "float32")
    load_engine_weights_into(model, engine, ours_r.manifest)
    deq = TorchReasoner(tiny_qwen_dir, model=model)
    for image, question in PAIRS:
        assert ours_r.generate(image, question, GREEDY).token_ids == deq.generate(image, question, GREEDY).token_ids
        assert (
            ours_r.generate(image, question, CONSTRAINED).token_ids
            == deq.generate(image, question, CONSTRAINED).token_ids
        )


def test_manifest_records_shapes_precisions_settings_and_validation(engine_fp32, engine_int4):
    m = load_manifest(engine_int4, verify="full")
    dec, vis = m.graph(reasoner_contract.DECODER), m.graph(reasoner_contract.VISION)
    assert dec.precision == "int4" and vis.precision == "fp32"
    assert dec.quantization["body_quantization"]["bits"] == 4
    assert dec.quantization["body_quantization"]["block_size"] == 32
    assert dec.quantization["lm_head"] == "int8"
    assert set(dec.dynamic_dims) == {"seq", "past", "total"}
    assert (
        dec.input(reasoner_contract.INPUTS_EMBEDS).shape == (1, "seq", 64)
        and dec.output(reasoner_contract.LOGITS).shape[0] == 1
    )
    assert vis.input(reasoner_contract.PIXEL_VALUES).shape == (64, 1176) and vis.output(
        reasoner_contract.IMAGE_EMBEDS
    ).shape == (16, 64)
    s = m.component("reasoner")
    assert s["input_size"] == 112 and s["num_image_tokens"] == 16 and s["embeddings"]["dtype"] == "float16"
    assert s["token_ids"]["image_pad"] > 0 and s["eos_token_ids"]
    for key in ("tokenizer", "tokenizer_config", "preprocessor_config", "settings"):
        assert (engine_int4 / s["files"][key]).is_file()
    assert "chat_template" not in s["files"] and not list(engine_int4.glob("reasoner/chat_template*"))
    assert s["answer"] == {"format": 1, "grammar": "seg_zero", "model_size": [112, 112]}
    assert json.loads((engine_int4 / "reasoner/reasoner.json").read_text())["weights"] == "int4"
    v = m.validation["reasoner"]
    assert v["greedy_identical_to_dequantized_torch"] == v["pairs"] and 0 < v["top1_agreement_vs_fp32"] <= 1
    v32 = load_manifest(engine_fp32).validation["reasoner"]
    assert v32["greedy_identical_to_transformers_fp32"] == v32["pairs"] and v32["pixel_values_max_abs_diff"] == 0
    assert np.load(engine_fp32 / "reasoner/embed_tokens.npy").dtype == np.float32


def test_result_stream_timings_and_counters(fp32):
    image, question = PAIRS[0]
    pieces = []
    res = fp32.generate(image, question, GREEDY, on_text=pieces.append)
    assert "".join(pieces) == res.text
    assert set(res.timings_ms) == {"preprocess", "vision", "prefill", "decode", "total"}
    assert res.forward_calls == len(res.token_ids)  # prefill + one call per token but the last
    assert res.jump_forward_steps_saved == 0 and res.decode_tokens_per_s > 0
    assert res.image_size == (640, 480) and res.input_size == 112 and res.stop_reason == "max_new_tokens"
    with pytest.raises(AttributeError):
        res.text = "x"  # frozen


def test_io_binding_path_gives_the_same_tokens(engine_fp32, fp32):
    bound = ReasonerPipeline(engine_fp32, device="cpu", threads=1, io_binding=True)
    assert bound.backend.decoder.io_binding
    for image, question in PAIRS[:2]:
        assert bound.generate(image, question, GREEDY).token_ids == fp32.generate(image, question, GREEDY).token_ids


def test_seeded_sampling_is_reproducible(fp32):
    image, question = PAIRS[1]
    opts = GenerationOptions(
        max_new_tokens=12, constrained=False, do_sample=True, temperature=1.5, top_p=0.9, seed=7, stop_at_answer=False
    )
    a, b = fp32.generate(image, question, opts), fp32.generate(image, question, opts)
    c = fp32.generate(image, question, GenerationOptions(**{**opts.__dict__, "seed": 8}))
    assert a.token_ids == b.token_ids and a.token_ids != c.token_ids


class ForceAfter:
    """Test constraint: free tokens for a while, then a forced run (like JSON keys of the answer)."""

    done = False

    def __init__(self, free, script):
        self.free, self.script, self.seen = free, list(script), []

    def mask(self, out=None):
        return None

    def forced_ids(self):
        n = len(self.seen) - self.free
        return self.script[n:] if n >= 0 else []

    def advance(self, token):
        self.seen.append(int(token))


def test_jump_forward_on_the_engine_saves_calls_and_matches_transformers(engine_fp32, torch_ref):
    image, question = PAIRS[2]
    script = torch_ref.tokenizer.encode('"points_1": [', add_special_tokens=False)
    make = lambda options, *rest: ForceAfter(3, script)  # noqa: E731
    opts = GenerationOptions(max_new_tokens=12, stop_at_answer=False, constrained=True)
    r = ReasonerPipeline(engine_fp32, device="cpu", threads=1, constraint_factory=make)
    jf = r.generate(image, question, opts)
    one = r.generate(image, question, GenerationOptions(**{**opts.__dict__, "jump_forward": False}))
    ref = TorchReasoner(torch_ref.model_dir, model=torch_ref.model, constraint_factory=make).generate(
        image, question, opts
    )
    assert jf.token_ids == one.token_ids == ref.token_ids
    assert list(jf.token_ids[3 : 3 + len(script)]) == script
    assert jf.forced_tokens == len(script) and jf.jump_forward_steps_saved == len(script)
    assert jf.forward_calls == one.forward_calls - len(script)


def test_device_errors(engine_fp32):
    import onnxruntime as ort

    with pytest.raises(InputError, match="tpu"):
        ReasonerPipeline(engine_fp32, device="tpu")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(BackendUnavailableError, match="CUDA"):
            ReasonerPipeline(engine_fp32, device="cuda")


@pytest.mark.gpu
def test_cuda_keeps_the_cache_on_the_device(engine_fp32, fp32):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("needs onnxruntime-gpu and a CUDA GPU")
    r = ReasonerPipeline(engine_fp32, device="cuda")
    image, question = PAIRS[0]
    res = r.generate(image, question, GREEDY)
    assert r.backend.decoder.io_binding and r.backend.decoder._past[0].device_name() == "cuda"
    assert res.token_ids == fp32.generate(image, question, GREEDY).token_ids


def test_engine_without_reasoner_is_refused(tmp_path):
    from segzero_edge.manifest import new_manifest, save_manifest

    save_manifest(new_manifest(), tmp_path)
    with pytest.raises(ManifestError, match="no 'reasoner' component"):
        ReasonerPipeline(tmp_path, device="cpu")


def test_constrained_answers_decode_and_match_transformers(fp32, torch_ref):
    from segzero_edge import decode_answer

    for image, question in PAIRS:
        ours = fp32.generate(image, question, CONSTRAINED)
        ref = torch_ref.generate(image, question, CONSTRAINED)
        assert ours.token_ids == ref.token_ids, question  # same constraint, same stop, same tokens
        assert ours.stop_reason == "answer" and ours.text.endswith("</answer>")
        answer = decode_answer(ours.text, image_size=ours.image_size, model_size=ours.input_size)
        assert answer.ok and len(answer.points) == 2 and ours.answer() == answer
        assert all(0 <= v <= s for v, s in zip(answer.box, (*ours.image_size, *ours.image_size)))
        # thinking budget: at most 10 tokens of free text before "</think><answer>" was forced
        think_end = fp32.tokenizer.decode(list(ours.token_ids)).index("</think>")
        assert think_end > 0
        assert ours.forced_tokens > 0 and ours.jump_forward_steps_saved > 0
        # every call feeds 1 + (its saved steps) tokens; the final forced run is never fed
        assert ours.forward_calls + ours.jump_forward_steps_saved <= len(ours.token_ids)
        assert ours.forward_calls < len(ours.token_ids) - 10


def test_thinking_budget_bounds_the_free_tokens(fp32):
    from segzero_edge.answer.constraint import AnswerConstraint

    image, question = PAIRS[3]
    for budget in (0, 4, 16):
        res = fp32.generate(
            image, question, GenerationOptions(max_new_tokens=200, constrained=True, thinking_budget=budget)
        )
        constraint = AnswerConstraint.from_tokenizer(
            fp32.tokenizer.tokenizer, model_size=112, vocab_size=fp32.settings.text.vocab_size
        )
        state = constraint.new_state(budget)
        for t in res.token_ids:
            state.advance(t)
        assert state.think_tokens <= budget and state.done


def test_encode_once_for_several_questions(fp32):
    (a, qa), (b, _) = PAIRS[0], PAIRS[1]
    first = fp32.generate(a, qa, GREEDY)
    vision = fp32.encode(a)
    assert not vision.embeds.flags.writeable and vision.image_size == (a.shape[1], a.shape[0])
    again = fp32.generate(None, qa, GREEDY, vision=vision)
    assert again.token_ids == first.token_ids and again.timings_ms["vision"] == 0.0
    assert again.image_size == first.image_size
    other = fp32.generate(None, qa, GREEDY, vision=fp32.encode(b))
    assert other.token_ids == fp32.generate(b, qa, GREEDY).token_ids
    with pytest.raises(InputError, match="needs an image"):
        fp32.generate(None, qa, GREEDY)
