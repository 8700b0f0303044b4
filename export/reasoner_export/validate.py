"""Validation of an exported reasoner against ``transformers`` (run at export, and by the tests).

Three phases, one model in memory at a time:

1. **transformers fp32 reference** (``TorchReasoner``): for each image/question pair, the processor's
   prompt ids and pixel values, the vision tower's embeddings, and greedy ``generate`` tokens + logits,
   without and with the answer constraint (thinking budget = ``validation_tokens``).
2. **the engine on ONNX Runtime** (``Reasoner``, CPU): prompt ids, pixel values and image embeddings are
   compared; fp32 engines must generate token-identical greedy text; int8/int4 engines are scored by
   teacher forcing along the reference tokens: top-1 agreement with fp32 and the logit error.
3. **int8/int4 only: transformers with the engine's dequantized weights** (the very bytes of
   ``decoder.onnx.data`` unpacked into the fp32 model, embeddings from ``embed_tokens.npy``): its greedy
   tokens must equal the engine's, so the only difference from fp32 is the quantization itself. When the
   export sets ``accuracy_level`` (int8 activations in ONNX Runtime's CPU kernels), this check runs on a
   twin of the decoder with fp32 activations (same weight bytes; 8-bit layers as fp32 MatMul of their
   dequantized weights, see ``dequantized.TWIN_MATMUL_BITS``), and the exported graph's own identity is reported.

Numbers go to ``manifest.validation["reasoner"]``; a failed check raises ``ExportValidationError`` and
nothing is written.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.errors import ExportValidationError
from segzero_edge.manifest import Manifest
from segzero_edge.prompt import LENS
from segzero_edge.reasoner.contract import COMPONENT, DECODER, ReasonerSettings

from .checkpoint import QwenCheckpoint, WeightReader
from .dequantized import fp32_activation_twin, load_engine_weights_into
from .memory import release_memory
from .wrappers import load_reference_model

log = logging.getLogger(__name__)

QUESTIONS = (
    "the cup the robot should pick up",
    "the object that is different from the others.",
    "something a person could sit on",
    "the left-most red thing",
    "what would you use to cut paper",
    "the largest object in the image",
    "the item closest to the camera",
)


def validation_samples(n: int, seed: int = 0) -> list[tuple[np.ndarray, str]]:
    """``n`` deterministic (HxWx3 uint8 image, question) pairs of varied sizes: gradients, blocks and noise."""
    rng = np.random.default_rng(seed)
    sizes = [(480, 640), (300, 500), (512, 512), (720, 405), (256, 320), (600, 800), (333, 444)]
    out = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack(
            [(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), np.full_like(xx, 40 * i % 256)], axis=-1
        ).astype(np.int32)
        for _ in range(4):
            y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
            img[y0 : y0 + rng.integers(10, h // 2), x0 : x0 + rng.integers(10, w // 2)] = rng.integers(0, 256, 3)
        img = np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
        out.append((img, QUESTIONS[i % len(QUESTIONS)]))
    return out


def _free() -> None:
    release_memory()


def _bar(items: list, desc: str) -> Any:
    """``items`` with a progress bar and an estimate on a terminal (tqdm; nothing when not a tty)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the export extra
        return items
    return tqdm(items, desc=desc, unit="pair", leave=False, disable=None)


@contextlib.contextmanager
def _vision_memo(model: Any, memo: dict[Any, Any]) -> Iterator[None]:
    """Run ``model``'s vision tower once per distinct input: its outputs are kept in ``memo``, keyed by the
    pixel values' bytes and the call's other arguments. Both generations of a pair (unconstrained and
    constrained) and the dequantized model of phase 3 (whose vision weights are the checkpoint's, like the
    reference's) see the same pixels, so each pair's vision pass runs once in all: on CPU, 3,600 patches
    through 32 blocks are the largest part of a 7B-shaped reference generation."""
    import copy
    import hashlib

    visual = model.model.visual
    original = visual.forward

    def forward(pixel_values, *args, **kwargs):
        digest = hashlib.blake2b(pixel_values.detach().cpu().contiguous().numpy().tobytes(), digest_size=16)
        key = (tuple(pixel_values.shape), digest.hexdigest(), repr(args), repr(sorted(kwargs.items())))
        if key not in memo:
            memo[key] = original(pixel_values, *args, **kwargs)
        return copy.copy(memo[key])  # a new output object: get_image_features rewrites its fields

    visual.forward = forward
    try:
        yield
    finally:
        del visual.forward  # the class's forward again


def _chat_template_matches(ckpt: QwenCheckpoint, template: str | None) -> bool:
    """Whether the checkpoint's own chat template renders the Seg-Zero request exactly like the prompt contract
    (``render_chat``), which is what the runtime uses. A mismatch is logged, not fatal: Seg-Zero prompts are
    defined by the contract, whatever template a fine-tune shipped."""
    from segzero_edge.prompt import chat_messages, render_chat
    from segzero_edge.reference.qwen import load_qwen_processor

    proc = load_qwen_processor(ckpt.path)
    question = "the cup the robot should pick up"
    messages = chat_messages(question, ckpt.family, template=template)
    rendered = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if rendered != render_chat(question, family=ckpt.family, template=template):
        log.warning(
            "the checkpoint's chat template renders the Seg-Zero prompt differently from the prompt "
            "contract; the runtime uses the contract (segzero_edge.prompt.render_chat)"
        )
        return False
    return True


def validate_reasoner(ckpt: QwenCheckpoint, manifest: Manifest, engine_root: Path, cfg: Any) -> dict[str, Any]:
    """Run the three phases (module docstring) on the staged engine; returns the numbers, raises on failure."""
    from segzero_edge.reasoner import GenerationOptions, ReasonerPipeline
    from segzero_edge.reasoner.preprocess import preprocess_image
    from segzero_edge.reference.torch_reasoner import TorchReasoner

    n_pairs = cfg.validation_pairs if cfg.validate == "full" else min(2, cfg.validation_pairs)
    samples = validation_samples(n_pairs)
    opts = GenerationOptions(max_new_tokens=cfg.validation_tokens, constrained=False, stop_at_answer=False)
    constrained = GenerationOptions(
        max_new_tokens=cfg.validation_tokens + 128, constrained=True, thinking_budget=cfg.validation_tokens
    )
    settings = ReasonerSettings.from_mapping(manifest.component(COMPONENT))
    weights = settings.weights
    try:  # the answer constraint needs the native extension
        from segzero_edge import _native  # noqa: F401
        from segzero_edge.answer.constraint import AnswerConstraint  # noqa: F401
    except ImportError as exc:
        constrained = None
        log.warning("answer constraint unavailable (%s): validating unconstrained generation only", exc)

    template = settings.prompt_template
    if settings.family == LENS:  # free text, run to EOS: no constraint knows LENS's answer grammar
        constrained = None
    template_ok = _chat_template_matches(ckpt, template)
    reasoner_args = {"family": ckpt.family, "input_size": ckpt.preprocess.input_size, "template": template}

    # phase 1: transformers fp32
    log.info("validation phase 1/3: transformers fp32 reference on %d pairs", n_pairs)
    seconds: dict[str, float] = {}
    t_phase = time.perf_counter()
    reader = WeightReader(ckpt.weight_files)
    ref = TorchReasoner(ckpt.path, model=load_reference_model(ckpt.config, reader), **reasoner_args)
    refs = []
    vision_memo: dict[Any, Any] = {}
    with _vision_memo(ref.model, vision_memo):
        for image, question in _bar(samples, "validation 1/3: transformers fp32"):
            inputs = ref.inputs(image, question)
            seen: list[Any] = []  # the vision tower's merged embeddings, as the generation below computes them
            hook = ref.model.model.visual.register_forward_hook(
                lambda _m, _i, out, seen=seen: seen.append(out.pooler_output)
            )
            try:
                res = ref.generate(image, question, opts, output_logits=True)
            finally:
                hook.remove()
            c_ref = list(ref.generate(image, question, constrained).token_ids) if constrained else None
            refs.append(
                {
                    "ids": inputs.input_ids[0].numpy(),
                    "pixels": inputs.pixel_values.numpy(),
                    "vision": seen[0].detach().float().numpy(),
                    "tokens": list(res.token_ids),
                    "ref_logits": ref.last_logits,
                    "constrained": c_ref,
                }
            )
    del ref
    _free()

    # phase 2: ONNX Runtime
    seconds["transformers_fp32"] = round(time.perf_counter() - t_phase, 1)
    t_phase = time.perf_counter()
    log.info("validation phase 2/3: the engine on ONNX Runtime")
    engine = ReasonerPipeline(manifest, engine_dir=engine_root, device="cpu", threads=cfg.threads, verify="none")
    numbers: dict[str, Any] = {
        "pairs": n_pairs,
        "max_new_tokens": cfg.validation_tokens,
        "weights": weights,
        "checkpoint_chat_template_matches_prompt_contract": template_ok,
    }
    ids_equal = pix = vis = 0.0
    identical, c_identical, top1, errs, rel = 0, 0, [], [], []
    engine_tokens, engine_constrained, visions = [], [], []
    for (image, question), r in _bar(list(zip(samples, refs)), "validation 2/3: ONNX Runtime"):
        ids = engine.tokenizer.encode_prompt(
            question, engine.settings.num_image_tokens, family=engine.family, template=template
        )
        ids_equal += float(np.array_equal(ids, r["ids"]))
        pre = preprocess_image(image, engine.preprocess_config)
        pix = max(pix, float(np.abs(pre.pixel_values - r["pixels"]).max()))
        encoded = engine.encode(image)  # once per pair: every generation below reuses it
        visions.append(encoded)
        emb = encoded.embeds
        vis = max(vis, float(np.abs(emb - r["vision"]).max() / (np.abs(r["vision"]).max() + 1e-12)))
        out = engine.generate(None, question, opts, vision=encoded)
        engine_tokens.append(list(out.token_ids))
        identical += int(list(out.token_ids) == r["tokens"])
        if constrained:
            c_out = engine.generate(None, question, constrained, vision=encoded)
            engine_constrained.append(list(c_out.token_ids))
            c_identical += int(list(c_out.token_ids) == r["constrained"])
        if weights != "fp32":
            logits = engine.teacher_forced_logits(None, question, r["tokens"], vision=encoded)
            top1.append(float(np.mean(logits.argmax(-1) == r["ref_logits"].argmax(-1))))
            errs.append(float(np.abs(logits - r["ref_logits"]).max()))
            rel.append(
                float(np.sqrt(np.mean((logits - r["ref_logits"]) ** 2)) / np.sqrt(np.mean(r["ref_logits"] ** 2)))
            )
    # With accuracy_level > 0 the CPU kernels also quantize activations: the dequantized-weights check runs on a
    # twin of the decoder without that attribute (same weights), so it isolates the weight quantization.
    exact_tokens, exact_constrained = engine_tokens, engine_constrained
    with fp32_activation_twin(engine_root, manifest.graph(DECODER).file) as twin:
        has_twin = twin is not None
        if has_twin:
            from segzero_edge.ort import SessionFactory
            from segzero_edge.reasoner.ort_backend import DecoderRunner

            t = engine.settings.text
            engine.backend.decoder = None  # release the exported graph's session before building the twin's
            _free()
            engine.backend.decoder = DecoderRunner(
                SessionFactory("cpu", threads=cfg.threads).create(twin), t.num_layers, t.num_kv_heads, t.head_dim
            )
            questions = [q for _, q in samples]
            exact_tokens = [
                list(engine.generate(None, q, opts, vision=v).token_ids) for q, v in zip(questions, visions)
            ]
            exact_constrained = (
                [list(engine.generate(None, q, constrained, vision=v).token_ids) for q, v in zip(questions, visions)]
                if constrained
                else []
            )
    del engine
    _free()
    seconds["onnxruntime"] = round(time.perf_counter() - t_phase, 1)
    numbers.update(
        prompt_ids_identical=int(ids_equal),
        pixel_values_max_abs_diff=pix,
        vision_max_rel_diff=round(vis, 8),
        greedy_identical_to_transformers_fp32=identical,
    )
    if constrained:
        numbers.update(
            constrained_identical_to_transformers_fp32=c_identical,
            constrained_thinking_budget=constrained.thinking_budget,
        )
    problems = []
    if ids_equal < n_pairs:
        problems.append("prompt ids differ from the transformers processor")
    if pix > 1e-6:
        problems.append("pixel values differ from the transformers image processor")
    if vis > 1e-3:
        problems.append("vision embeddings differ from transformers")
    if weights == "fp32" and identical < n_pairs:
        problems.append("fp32 greedy tokens differ from transformers generate")
    if weights == "fp32" and constrained and c_identical < n_pairs:
        problems.append("fp32 constrained greedy tokens differ from transformers generate")
    if weights != "fp32":
        numbers.update(
            top1_agreement_vs_fp32=round(float(np.mean(top1)), 4),
            logits_max_abs_err=max(errs),
            logits_rel_rms_err=round(float(np.mean(rel)), 6),
        )

        # phase 3: transformers carrying the engine's dequantized weights
        log.info("validation phase 3/3: transformers with the engine's dequantized weights")
        t_phase = time.perf_counter()
        model = load_reference_model(ckpt.config, reader)
        replaced = load_engine_weights_into(model, engine_root, manifest)
        deq = TorchReasoner(ckpt.path, model=model, **reasoner_args)
        with _vision_memo(deq.model, vision_memo):
            deq_tokens = [
                list(deq.generate(image, q, opts).token_ids)
                for image, q in _bar(samples, "validation 3/3: dequantized torch")
            ]
            deq_constrained = (
                [list(deq.generate(image, q, constrained).token_ids) for image, q in samples] if constrained else []
            )
        vision_memo.clear()
        same = sum(int(a == b) for a, b in zip(deq_tokens, exact_tokens))
        c_same = sum(int(a == b) for a, b in zip(deq_constrained, exact_constrained)) if constrained else None
        if has_twin:  # informational: the engine as exported (int8 activations on CPU)
            numbers["accuracy_level_greedy_identical_to_dequantized_torch"] = sum(
                int(a == b) for a, b in zip(deq_tokens, engine_tokens)
            )
        del deq, model
        _free()
        numbers.update(greedy_identical_to_dequantized_torch=same, dequantized_tensors=replaced)
        if same < n_pairs:
            problems.append("greedy tokens differ from transformers carrying the same dequantized weights")
        if constrained:
            numbers["constrained_identical_to_dequantized_torch"] = c_same
            if c_same < n_pairs:
                problems.append("constrained tokens differ from transformers carrying the same dequantized weights")
    if weights != "fp32":
        seconds["dequantized_torch"] = round(time.perf_counter() - t_phase, 1)
    numbers["phase_seconds"] = seconds
    log.info("reasoner validation: %s", numbers)
    if problems:
        raise ExportValidationError(
            "; ".join(problems),
            numbers=numbers,
            hint="nothing was written; report this with the checkpoint's config.json",
        )
    return numbers
