"""Validation of an exported reasoner against ``transformers`` (run at export, and by the tests).

Three phases, one model in memory at a time, all scoring the engine's own generations:

1. **the engine on ONNX Runtime** (``engine_run.run_engine``, CPU): for each image/question pair, greedy
   generation without and with the answer constraint (thinking budget = ``validation_tokens``), prompt ids,
   pixel values and image embeddings; int8/int4/fp16 engines also give their logits along the greedy tokens,
   and, when the graph quantizes activations (``accuracy_level``), the hidden states of a twin of the decoder
   with fp32 activations (same weight bytes; 8-bit layers as fp32 MatMul, ``dequantized.TWIN_MATMUL_BITS``).
2. **transformers fp32** (``reference_stream.StreamedReference``: transformers' own modules, teacher-forced,
   one decoder layer at a time, on CUDA when torch has it): prompt ids, pixel values and vision embeddings
   are compared; at every position of the engine's tokens the reference's greedy choice is computed (within
   the constraint's allowed tokens; forced tokens are not a choice). fp32 engines must agree everywhere,
   which is exactly "the engine's greedy generation equals transformers'" (``engine_run``'s docstring).
   int8/int4 engines are scored by top-1 agreement with fp32 and the logit error along their tokens.
3. **int8/int4/fp16 only: transformers with the engine's dequantized weights** (the very bytes of
   ``decoder.onnx.data`` unpacked, embeddings from ``embed_tokens.npy``, streamed the same way): its greedy
   choices must equal the engine's everywhere (the twin's, when there is one, projected by the same
   dequantized LM head), so the only difference from fp32 is the quantization itself. The exported
   graph's own agreement is reported too.

What this proves: token-level parity of every generated position with transformers, for every layer of the
model (all layers run, in full precision; none is skipped or truncated). What it no longer exercises: the
reference's own KV-cache decoding (transformers' ``generate``), which is not what is being validated;
the engine's cache is exercised by its own generation in phase 1.

Numbers go to ``manifest.validation["reasoner"]``; a failed check raises ``ExportValidationError`` and
nothing is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.errors import ExportValidationError
from segzero_edge.manifest import Manifest
from segzero_edge.prompt import LENS
from segzero_edge.reasoner import GenerationOptions
from segzero_edge.reasoner.contract import COMPONENT, ReasonerSettings
from segzero_edge.reference.qwen import load_qwen_processor
from segzero_edge.reference.torch_reasoner import processor_inputs

from .checkpoint import QwenCheckpoint, WeightReader
from .engine_run import EngineRun, greedy_picks, run_engine
from .memory import release_memory
from .reference_stream import CheckpointWeights, EngineWeights, PackedPair, StreamedReference

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


def _bar(items: list, desc: str, unit: str = "pair") -> Any:
    """``items`` with a progress bar and an estimate on a terminal (tqdm; nothing when not a tty)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the export extra
        return items
    return tqdm(items, desc=desc, unit=unit, leave=False, disable=None)


def _layers(desc: str) -> Callable[[Iterator[int]], Any]:
    return lambda layers: _bar(list(layers), desc, unit="layer")


def _agreement(
    logits: Sequence[Sequence[np.ndarray]], run: EngineRun, expected: Sequence[Sequence[np.ndarray]] | None = None
) -> list[int]:
    """How many pairs agree, per generation kind (greedy, constrained): a generation agrees when the greedy
    choice from ``logits`` equals, at every position the constraint left free, the engine's token, or (with
    ``expected``) the greedy choice from ``expected``'s logits."""
    counts = [0] * max(len(g) for g in run.generations)
    for p, (pair, gens, steps) in enumerate(zip(logits, run.generations, run.steps)):
        for g, (rows, tokens, step) in enumerate(zip(pair, gens, steps)):
            picks = greedy_picks(rows, step)
            want = np.asarray(tokens) if expected is None else greedy_picks(expected[p][g], step)
            free = picks >= 0
            counts[g] += int(np.array_equal(picks[free], want[free]))
    return counts + [0] * (2 - len(counts))


def _regroup(flat: list[np.ndarray], generations: list[list[list[int]]]) -> list[list[np.ndarray]]:
    it = iter(flat)
    return [[next(it) for _ in gens] for gens in generations]


def _chat_template_matches(ckpt: QwenCheckpoint, template: str | None) -> bool:
    """Whether the checkpoint's own chat template renders the Seg-Zero request exactly like the prompt contract
    (``render_chat``), which is what the runtime uses. A mismatch is logged, not fatal: Seg-Zero prompts are
    defined by the contract, whatever template a fine-tune shipped."""
    from segzero_edge.prompt import chat_messages, render_chat

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
    n_pairs = cfg.validation_pairs if cfg.validate == "full" else min(2, cfg.validation_pairs)
    samples = validation_samples(n_pairs)
    settings = ReasonerSettings.from_mapping(manifest.component(COMPONENT))
    weights = settings.weights
    opts = GenerationOptions(max_new_tokens=cfg.validation_tokens, constrained=False, stop_at_answer=False)
    constrained: GenerationOptions | None = GenerationOptions(
        max_new_tokens=cfg.validation_tokens + 128, constrained=True, thinking_budget=cfg.validation_tokens
    )
    try:  # the answer constraint needs the native extension
        from segzero_edge import _native  # noqa: F401
    except ImportError as exc:
        constrained = None
        log.warning("answer constraint unavailable (%s): validating unconstrained generation only", exc)
    if settings.family == LENS:  # free text, run to EOS: no constraint knows LENS's answer grammar
        constrained = None
    numbers: dict[str, Any] = {
        "pairs": n_pairs,
        "max_new_tokens": cfg.validation_tokens,
        "weights": weights,
        "method": "teacher_forced",
        "checkpoint_chat_template_matches_prompt_contract": _chat_template_matches(ckpt, settings.prompt_template),
    }
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    log.info("validation phase 1/3: the engine on ONNX Runtime, %d pairs", n_pairs)
    run = run_engine(manifest, engine_root, samples, opts, constrained, threads=cfg.threads, progress=_bar)
    seconds["onnxruntime"] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    stream = StreamedReference(ckpt.config, device=cfg.reference_device)
    numbers["reference_device"] = str(stream.device)
    log.info("validation phase 2/3: transformers fp32 on %s, one layer at a time", stream.device)
    processor = load_qwen_processor(ckpt.path)
    pairs = []
    for (image, question), gens in zip(samples, run.generations):
        inputs = processor_inputs(
            processor,
            image,
            question,
            input_size=ckpt.preprocess.input_size,
            family=ckpt.family,
            template=settings.prompt_template,
        )
        pairs.append(PackedPair.from_processor(inputs, gens))
    reader = WeightReader(ckpt.weight_files)
    vision = stream.vision(reader, [(p.pixel_values, p.image_grid_thw) for p in pairs])
    ref, _ = stream.logits(
        pairs, vision, CheckpointWeights(reader, ckpt.text.tie_word_embeddings), _layers("validation 2/3: fp32")
    )
    numbers.update(
        prompt_ids_identical=sum(int(np.array_equal(p.input_ids, ids)) for p, ids in zip(pairs, run.prompt_ids)),
        pixel_values_max_abs_diff=max(float(np.abs(p.pixel_values - v).max()) for p, v in zip(pairs, run.pixels)),
        vision_max_rel_diff=round(
            max(float(np.abs(e - r).max() / (np.abs(r).max() + 1e-12)) for e, r in zip(run.vision, vision)), 8
        ),
    )
    ref_agree = _agreement(ref, run)
    numbers["greedy_identical_to_transformers_fp32"] = ref_agree[0]
    if constrained:
        numbers["constrained_identical_to_transformers_fp32"] = ref_agree[1]
        numbers["constrained_thinking_budget"] = constrained.thinking_budget
    if weights != "fp32":
        top1, errs, rel = [], [], []
        for pair_logits, gens, engine_logits in zip(ref, run.generations, run.logits):
            r, tokens = pair_logits[0], np.asarray(gens[0])
            top1.append(float(np.mean(r.argmax(-1) == tokens)))
            errs.append(float(np.abs(engine_logits - r).max()))
            rel.append(float(np.sqrt(np.mean((engine_logits - r) ** 2)) / np.sqrt(np.mean(r**2))))
        numbers.update(
            top1_agreement_vs_fp32=round(float(np.mean(top1)), 4),
            logits_max_abs_err=max(errs),
            logits_rel_rms_err=round(float(np.mean(rel)), 6),
        )
    del ref
    release_memory()
    seconds["transformers_fp32"] = round(time.perf_counter() - t, 1)

    problems = []
    if numbers["prompt_ids_identical"] < n_pairs:
        problems.append("prompt ids differ from the transformers processor")
    if numbers["pixel_values_max_abs_diff"] > 1e-6:
        problems.append("pixel values differ from the transformers image processor")
    if numbers["vision_max_rel_diff"] > 1e-3:
        problems.append("vision embeddings differ from transformers")
    if weights == "fp32" and ref_agree[0] < n_pairs:
        problems.append("fp32 greedy tokens differ from transformers")
    if weights == "fp32" and constrained and ref_agree[1] < n_pairs:
        problems.append("fp32 constrained greedy tokens differ from transformers")

    if weights != "fp32":
        t = time.perf_counter()
        log.info("validation phase 3/3: transformers with the engine's dequantized weights, one layer at a time")
        source = EngineWeights(reader, engine_root, manifest)
        twin_hidden = [h for pair in run.twin_hidden for h in pair] if run.twin_hidden else []
        deq, twin_logits = stream.logits(pairs, vision, source, _layers("validation 3/3: dequantized"), twin_hidden)
        twin = _regroup(twin_logits, run.generations) if run.twin_hidden else None
        same = _agreement(deq, run, twin)
        numbers.update(
            greedy_identical_to_dequantized_torch=same[0],
            dequantized_tensors=source.replaced + 1,  # + the embedding table
            twin_fp32_activations=run.twin_hidden is not None,
        )
        if twin is not None:  # informational: the engine as exported (int8 activations on CPU)
            numbers["accuracy_level_greedy_identical_to_dequantized_torch"] = _agreement(deq, run)[0]
        if same[0] < n_pairs:
            problems.append("greedy tokens differ from transformers carrying the same dequantized weights")
        if constrained:
            numbers["constrained_identical_to_dequantized_torch"] = same[1]
            if same[1] < n_pairs:
                problems.append("constrained tokens differ from transformers carrying the same dequantized weights")
        del deq, twin_logits, twin
        seconds["dequantized_torch"] = round(time.perf_counter() - t, 1)
    del stream, vision
    release_memory()
    numbers["phase_seconds"] = seconds
    log.info("reasoner validation: %s", numbers)
    if problems:
        raise ExportValidationError(
            "; ".join(problems),
            numbers=numbers,
            hint="nothing was written; report this with the checkpoint's config.json",
        )
    return numbers
