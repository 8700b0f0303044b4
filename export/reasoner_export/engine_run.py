"""Phase 1 of the reasoner validation: the staged engine generates on ONNX Runtime (CPU), and its tokens
become the sequences the transformers references score, teacher-forced (``validate.py``).

Greedy generation is a function of the logits at each step: a model's greedy generation equals the
engine's exactly when, at every position of the engine's tokens, the model's logits given the prompt and the
tokens before pick that token (its argmax among the tokens the answer constraint allows; positions the
constraint forces are not the model's choice). So one teacher-forced forward per pair decides what a
``generate`` per generation used to, with the LM head applied at the scored positions only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.manifest import Manifest
from segzero_edge.reasoner import GenerationOptions, ReasonerPipeline
from segzero_edge.reasoner.contract import COMPONENT, DECODER, ReasonerSettings
from segzero_edge.reasoner.preprocess import decode_position_ids, preprocess_image

from .dequantized import fp32_activation_twin
from .memory import release_memory

#: One position of a constrained generation: ``None`` where the constraint forced the token, else the allowed
#: tokens as ``np.packbits`` of the bool mask (``b""`` = any token).
Step = bytes | None


@dataclass
class EngineRun:
    """What the engine produced for each pair (lists indexed by pair)."""

    prompt_ids: list[np.ndarray] = field(default_factory=list)
    pixels: list[np.ndarray] = field(default_factory=list)
    vision: list[np.ndarray] = field(default_factory=list)
    #: per pair: the greedy generation, then (when validated) the constrained one; each ends where the engine
    #: stopped (its EOS included)
    generations: list[list[list[int]]] = field(default_factory=list)
    #: per pair and generation: the constraint's steps along the tokens (None for an unconstrained generation)
    steps: list[list[list[Step] | None]] = field(default_factory=list)
    #: int8/int4/fp16 engines: the engine's logits ``[n, vocab]`` along its greedy generation
    logits: list[np.ndarray] = field(default_factory=list)
    #: when the graph computes with int8 activations: the fp32-activation twin's post-norm hidden states
    #: ``[n, hidden]`` at the positions predicting each generation's tokens (per pair, per generation)
    twin_hidden: list[list[np.ndarray]] | None = None


def constraint_steps(constraint: Any, tokens: Sequence[int]) -> list[Step]:
    """Step a fresh ``TokenConstraint`` along ``tokens``, recording what it allowed before each."""
    steps: list[Step] = []
    for token in tokens:
        if len(constraint.forced_ids()):
            steps.append(None)
        else:
            allowed = constraint.mask()
            steps.append(b"" if allowed is None else np.packbits(np.asarray(allowed, bool)).tobytes())
        constraint.advance(int(token))
    return steps


def greedy_picks(logits: np.ndarray, steps: Sequence[Step] | None) -> np.ndarray:
    """The greedy choice ``[n]`` at each row of ``logits [n, vocab]`` within what ``steps`` allowed; -1 where
    the constraint forced the token. Rows past the tokenizer's allowed set (embedding padding) never win."""
    picks = np.full(len(logits), -1, np.int64)
    vocab = logits.shape[1]
    for j, row in enumerate(logits):
        step = b"" if steps is None else steps[j]
        if step is None:
            continue
        if step:
            allowed = np.unpackbits(np.frombuffer(step, np.uint8), count=vocab).astype(bool)
            row = np.where(allowed, row, np.float32(-np.inf))
        picks[j] = int(np.argmax(row))
    return picks


def run_engine(
    manifest: Manifest,
    engine_root: Path,
    samples: Sequence[tuple[np.ndarray, str]],
    opts: GenerationOptions,
    constrained: GenerationOptions | None,
    *,
    threads: int | None,
    progress: Any = lambda items, desc: items,
) -> EngineRun:
    """Generate with the engine for each ``(image, question)``: greedy with ``opts``, and with ``constrained``
    when given; with a quantized decoder also its logits along the greedy tokens and, when its graph quantizes
    activations, the fp32-activation twin's hidden states (``dequantized.fp32_activation_twin``)."""
    run = EngineRun()
    questions = [q for _, q in samples]
    # The vision session, then the decoder's: never both open (the engine's runtime holds both; validation
    # need not, and for 7B the vision tower's session is 2.7 GB of weights plus its working memory).
    encoder = _pipeline(manifest, engine_root, threads, vision=True)
    encoded = [encoder.encode(image) for image, _ in progress(list(samples), "validation 1/3: vision (ORT)")]
    run.pixels = [preprocess_image(image, encoder.preprocess_config).pixel_values for image, _ in samples]
    run.vision = [v.embeds for v in encoded]
    del encoder
    release_memory()
    engine = _pipeline(manifest, engine_root, threads, vision=False)
    template = engine.settings.prompt_template
    for question, vision in progress(list(zip(questions, encoded)), "validation 1/3: decoder (ORT)"):
        run.prompt_ids.append(
            engine.tokenizer.encode_prompt(
                question, engine.settings.num_image_tokens, family=engine.family, template=template
            )
        )
        with _recorded_logits(engine.backend) as rows:
            gens = [list(engine.generate(None, question, opts, vision=vision).token_ids)]
        steps: list[list[Step] | None] = [None]
        if constrained is not None:
            gens.append(list(engine.generate(None, question, constrained, vision=vision).token_ids))
            steps.append(constraint_steps(engine.make_constraint(constrained), gens[-1]))
        run.generations.append(gens)
        run.steps.append(steps)
        if engine.settings.weights != "fp32":
            # An unconstrained greedy generation feeds one token per decoder call, so its calls' logits are
            # the teacher-forced rows (row j predicts token j); recomputed only if the options batched tokens.
            same = len(rows) == len(gens[0])
            run.logits.append(
                np.stack(rows) if same else engine.teacher_forced_logits(None, question, gens[0], vision=vision)
            )
    if engine.settings.weights != "fp32":
        with fp32_activation_twin(engine_root, manifest.graph(DECODER).file) as twin:
            if twin is not None:
                run.twin_hidden = _twin_hidden(engine, twin, questions, encoded, run.generations, threads)
    del engine
    release_memory()
    return run


@contextlib.contextmanager
def _recorded_logits(backend: Any) -> Iterator[list[np.ndarray]]:
    """A copy of the logits of every ``backend.step`` call made inside the block, in call order."""
    rows: list[np.ndarray] = []
    step = backend.step

    def recorded(*args: Any, **kwargs: Any) -> np.ndarray:
        out = step(*args, **kwargs)
        rows.append(np.array(out, np.float32))
        return out

    backend.step = recorded
    try:
        yield rows
    finally:
        del backend.step  # the class's method again


def _pipeline(manifest: Manifest, engine_root: Path, threads: int | None, *, vision: bool) -> ReasonerPipeline:
    """The engine's reasoner on ONNX Runtime (CPU) with only its vision session, or only its decoder's."""
    from segzero_edge.ort import SessionFactory
    from segzero_edge.reasoner.contract import VISION
    from segzero_edge.reasoner.ort_backend import OrtReasonerBackend

    settings = ReasonerSettings.from_mapping(manifest.component(COMPONENT))
    graphs = (manifest.graph(VISION), None) if vision else (None, manifest.graph(DECODER))
    backend = OrtReasonerBackend(engine_root, settings, *graphs, SessionFactory("cpu", threads=threads))
    return ReasonerPipeline(manifest, engine_dir=engine_root, backend=backend, verify="none")


def _twin_hidden(engine: ReasonerPipeline, twin: Path, questions, encoded, generations, threads) -> list:
    """The twin's post-norm hidden states at the positions predicting each generation's tokens: per pair, one
    prefill of the prompt, then each generation fed on the prompt's KV cache (the positions the engine used)."""
    from segzero_edge.ort import SessionFactory
    from segzero_edge.reasoner.contract import ATTENTION_MASK, HIDDEN_STATES, INPUTS_EMBEDS, POSITION_IDS
    from segzero_edge.reasoner.ort_backend import DecoderRunner

    t = engine.settings.text
    engine.backend.decoder = None  # release the exported graph's session before building the twin's
    release_memory()
    runner = DecoderRunner(
        SessionFactory("cpu", threads=threads).create(twin), t.num_layers, t.num_kv_heads, t.head_dim
    )

    def run(embeds: np.ndarray, positions: np.ndarray, past: list[np.ndarray]) -> tuple[np.ndarray, list]:
        total = past[0].shape[2] + embeds.shape[0]
        mask = np.ones((1, total), np.int64)
        mask[0, 0] = 0  # the placeholder slot every cache starts with (DecoderRunner.reset)
        feeds = {INPUTS_EMBEDS: embeds[None], ATTENTION_MASK: mask, POSITION_IDS: positions}
        feeds.update(zip(runner.past_names, past))
        out = runner.session.run([HIDDEN_STATES, *runner.present_names], feeds)
        return out[0][0], out[1:]

    out = []
    for question, vision, gens in zip(questions, encoded, generations):
        ids, embeds, positions, delta = engine.prompt(question, vision.embeds)
        empty = [np.zeros(runner.kv_shape, np.float32) for _ in runner.past_names]
        prompt_hidden, cache = run(np.ascontiguousarray(embeds[0], np.float32), positions, empty)
        rows = []
        for gen in gens:
            body = np.asarray(gen[:-1], np.int64)
            hidden = prompt_hidden[-1:]
            if body.size:
                more, _ = run(engine.backend.embed(body), decode_position_ids(len(ids), body.size, delta), cache)
                hidden = np.concatenate([hidden, more])
            rows.append(np.asarray(hidden, np.float32))
        out.append(rows)
    return out
