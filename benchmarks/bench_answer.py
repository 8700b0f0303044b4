"""Benchmark of answer decoding, streaming and the token-level answer constraint.

Measures, in one run on this machine:
  * decode time per answer, native (C++) vs the pure-Python twin, over a corpus of realistic and
    malformed answers: the public call (``decode_answer``, building the ``Answer``) and the raw backend;
  * stream cost per piece (``AnswerStream.feed``), native vs twin;
  * the constraint at a 151,936-token vocabulary (Qwen2.5-VL's logits width): build time, and per
    generation step mask / apply / advance / forced-ids costs over simulated generations.

Usage (from the repository root, after ``make install``)::

    .venv/bin/python benchmarks/bench_answer.py                 # writes benchmarks/results/answer.{json,md}
    .venv/bin/python benchmarks/bench_answer.py --quick --out /tmp/bench

Targets: native >= 20x the twin and < 10 us for a typical answer; constraint <= 0.2 ms/step.
Timings are the minimum of several repeats (the machine may be shared); ratios come from one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.answer: the corpus generator and the Qwen-like test tokenizer

from segzero_edge.answer import _answer_py, _stream_py  # noqa: E402
from segzero_edge.answer import decode as answer  # noqa: E402
from segzero_edge.answer.constraint import AnswerConstraint, token_bytes_from_tokenizer  # noqa: E402
from tests.answer import gen  # noqa: E402

QWEN_LOGITS = 151_936


def _per_call(fn, args, reps: int, repeats: int) -> float:
    """Seconds per call: minimum over ``repeats`` of the mean over ``reps`` calls."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn(*args)
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def corpus(n: int, seed: int = 0) -> dict[str, list[str]]:
    rng = random.Random(seed)
    typical = []
    while len(typical) < n:
        think = " ".join(rng.choice(gen.WORDS) for _ in range(rng.randrange(40, 90))) + "."
        text = f"<think>{think}</think><answer>{gen.seg_zero_json(rng, exotic=0.0)}</answer>"
        if answer.decode_answer(text).ok:
            typical.append(text)
    varied = [gen.realistic(rng) for _ in range(n)]
    malformed = [gen.mutate(rng, gen.realistic(rng)) for _ in range(n)]
    return {"typical": typical, "varied": varied, "malformed": malformed}


def bench_decode(texts: dict[str, list[str]], repeats: int) -> dict:
    out = {}
    backends = {
        "public": {name: fn for name, fn in answer._BACKENDS.items()},
        "raw": {"native": answer._native.decode, "python": _answer_py.decode},
    }
    for group, items in texts.items():
        for level, fns in backends.items():
            per = {name: [] for name in fns}
            for text in items:
                for name, fn in fns.items():  # interleaved: both see the same machine load
                    reps = 200 if name == "native" else 20
                    per[name].append(_per_call(fn, (text, 1280, 720, 840, 840), reps, repeats))
            row = {f"{name}_us_median": statistics.median(v) * 1e6 for name, v in per.items()} | {
                f"{name}_us_mean": statistics.fmean(v) * 1e6 for name, v in per.items()
            }
            row["ratio_mean"] = row["python_us_mean"] / row["native_us_mean"]
            row["ratio_median"] = row["python_us_median"] / row["native_us_median"]
            row["answers"] = len(items)
            row["ok_fraction"] = sum(answer.decode_answer(t).ok for t in items) / len(items)
            out[f"{group}/{level}"] = row
    return out


def bench_stream(tokenizer, texts: list[str], repeats: int) -> dict:
    pieces_per_text = [[tokenizer.decode([i]) for i in tokenizer.encode(t).ids] for t in texts]
    res = {}
    for name, cls in (("native", answer._native.AnswerStream), ("python", _stream_py.AnswerStream)):
        for pieces in pieces_per_text[:5]:  # warm-up
            s = cls()
            for p in pieces:
                s.feed(p)
        best = float("inf")
        n_pieces = sum(len(p) for p in pieces_per_text)
        for _ in range(repeats):
            t0 = time.perf_counter()
            for pieces in pieces_per_text:
                s = cls()
                for p in pieces:
                    if s.feed(p):
                        break
            best = min(best, (time.perf_counter() - t0) / n_pieces)
        res[f"{name}_us_per_piece"] = best * 1e6
    # the public wrapper (type check + text accumulation) on top of the native stream
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for pieces in pieces_per_text:
            s = answer.AnswerStream()
            for p in pieces:
                if s.feed(p):
                    break
        best = min(best, (time.perf_counter() - t0) / n_pieces)
    res["public_us_per_piece"] = best * 1e6
    res["ratio"] = res["python_us_per_piece"] / res["native_us_per_piece"]
    res["pieces"] = sum(len(p) for p in pieces_per_text)
    return res


def padded_vocab(tokenizer, size: int, seed: int = 0) -> tuple[list[bytes | None], list[int]]:
    """The trained vocabulary padded with random byte strings and word pieces up to ``size`` ids
    (specials last, as in Qwen); returns the vocabulary and the end-of-sequence ids."""
    tokens, specials, _ = token_bytes_from_tokenizer(tokenizer)
    special_ids = set(specials.values())
    base = [t for i, t in enumerate(tokens) if i not in special_ids]
    rng = random.Random(seed)
    seen = set(base)
    words = [*gen.WORDS, "answer", "think", "bbox", "points", "Ġthe", '":', '", ', "],"]
    while len(base) < size - len(specials):
        r = rng.random()
        if r < 0.5:
            b = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 10)))
        elif r < 0.8:
            b = (rng.choice(["", " "]) + rng.choice(words) + rng.choice(["", "s", "ing", "_1", '":'])).encode()
        else:
            b = "".join(rng.choice('{}[]":, 0123456789<>/abinoprstwx_') for _ in range(rng.randrange(1, 6))).encode()
        if b not in seen:
            seen.add(b)
            base.append(b)
    names = list(specials)
    vocab = base + [n.encode() for n in names]
    eos = [len(base) + names.index(n) for n in ("<|im_end|>", "<|endoftext|>") if n in names]
    return vocab, eos


def bench_constraint(tokenizer, generations: int, budget: int, seed: int = 0) -> dict:
    vocab, eos = padded_vocab(tokenizer, QWEN_LOGITS)
    t0 = time.perf_counter()
    constraint = AnswerConstraint(vocab, eos_token_ids=eos, vocab_size=QWEN_LOGITS)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    logits = np.empty(QWEN_LOGITS, dtype=np.float32)
    mask = np.empty(QWEN_LOGITS, dtype=np.bool_)
    t = {"think": {"apply": [], "mask": [], "advance": [], "forced": []},
         "answer": {"apply": [], "mask": [], "advance": [], "forced": []}}  # fmt: skip
    sample_s, steps, forced_tokens = [], 0, 0
    pc = time.perf_counter
    for _ in range(generations):
        state = constraint.new_state(budget)
        while not state.done:
            phase = state.phase
            a = pc()
            forced = state.forced_ids()
            b = pc()
            t[phase]["forced"].append(b - a)
            if forced:  # jump-forward: append without sampling
                for tok in forced:
                    state.advance(tok)
                forced_tokens += len(forced)
                continue
            logits[:] = rng.standard_normal(QWEN_LOGITS, dtype=np.float32)
            a = pc()
            state.mask(mask)
            b = pc()
            state.apply(logits)
            c = pc()
            tok = int(np.argmax(logits))
            d = pc()
            state.advance(tok)
            e = pc()
            t[phase]["mask"].append(b - a)
            t[phase]["apply"].append(c - b)
            t[phase]["advance"].append(e - d)
            sample_s.append(d - c)
            steps += 1
    res = {"vocab_size": QWEN_LOGITS, "build_s": build_s, "states": constraint._index.num_states}
    for phase, parts in t.items():
        for name, values in parts.items():
            res[f"{phase}_{name}_us_median"] = statistics.median(values) * 1e6
    for phase in t:
        res[f"{phase}_step_us"] = sum(
            res[f"{phase}_{n}_us_median"] for n in ("apply", "advance", "forced")
        )  # what a runtime pays per sampled step: apply (or mask), advance, forced check
    res["argmax_us_median"] = statistics.median(sample_s) * 1e6
    res["sampled_steps"] = steps
    res["forced_tokens"] = forced_tokens
    res["generations"] = generations
    res["thinking_budget"] = budget
    return res


def markdown(report: dict) -> str:
    lines = [f"# Answer decoding benchmark ({report['machine']})", ""]
    lines += ["## Decoding, per answer (µs; native vs pure-Python twin, same run)", ""]
    lines += ["| corpus / level | answers | ok | native median | python median | ratio (median) | ratio (mean) |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for key, r in report["decode"].items():
        lines.append(
            f"| {key} | {r['answers']} | {r['ok_fraction']:.0%} | {r['native_us_median']:.2f} | "
            f"{r['python_us_median']:.1f} | {r['ratio_median']:.1f}x | {r['ratio_mean']:.1f}x |"
        )
    s = report["stream"]
    lines += [
        "",
        "## Streaming, per piece (µs)",
        "",
        "| native | public wrapper | python | ratio |",
        "|---|---|---|---|",
    ]
    lines.append(
        f"| {s['native_us_per_piece']:.3f} | {s['public_us_per_piece']:.3f} | "
        f"{s['python_us_per_piece']:.3f} | "
        f"{s['ratio']:.1f}x |"
    )
    c = report["constraint"]
    lines += ["", f"## Constraint at {c['vocab_size']:,} tokens (µs per step, median)", ""]
    lines.append(f"Build: {c['build_s']:.2f} s ({c['states']} automaton states). ")
    lines.append(
        f"{c['generations']} generations, thinking budget {c['thinking_budget']}: "
        f"{c['sampled_steps']} sampled "
        f"steps, {c['forced_tokens']} forced (jump-forward) tokens.\n"
    )
    lines += [
        "| phase | apply (float32 logits) | mask (bool) | advance | forced_ids | step total |",
        "|---|---|---|---|---|---|",
    ]
    for phase in ("think", "answer"):
        lines.append(
            f"| {phase} | {c[f'{phase}_apply_us_median']:.1f} | {c[f'{phase}_mask_us_median']:.1f} | "
            f"{c[f'{phase}_advance_us_median']:.2f} | {c[f'{phase}_forced_us_median']:.2f} | "
            f"{c[f'{phase}_step_us']:.1f} |"
        )
    lines.append(f"\n(For scale: numpy argmax over the logits takes {c['argmax_us_median']:.1f} µs.)")
    lines.append(f"\nCommand: `{report['command']}`\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory")
    p.add_argument("--answers", type=int, default=300, help="answers per corpus group")
    p.add_argument("--generations", type=int, default=30, help="constrained generations at 151,936 tokens")
    p.add_argument("--budget", type=int, default=64, help="thinking budget of those generations")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = p.parse_args(argv)
    if answer._native is None:
        print("segzero_edge._native is not built: run `make install` first", file=sys.stderr)
        return 2
    if args.quick:
        args.answers, args.generations, args.repeats = 30, 3, 1
    from segzero_edge.reference.builders.tokenizer import build_qwen_tokenizer

    tokenizer = build_qwen_tokenizer()
    texts = corpus(args.answers)
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "decode": bench_decode(texts, args.repeats),
        "stream": bench_stream(tokenizer, texts["typical"][:100], args.repeats),
        "constraint": bench_constraint(tokenizer, args.generations, args.budget),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "answer.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (args.out / "answer.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
