"""Prefill time and decode tokens/s of the reasoner: ONNX Runtime INT4 / INT8 / fp32 vs transformers fp32.

One random checkpoint with the real Qwen2.5-VL-3B shapes (vocabulary 151936, hidden 2048, FFN 11008, 16/2
heads) but only ``--layers`` decoder layers is exported at each precision; every variant then runs the
same Seg-Zero-sized request (840x840 input: 900 image tokens + the prompt text, ~1030 tokens) on the same
machine with the same thread count:

* prefill: one decoder call over the whole prompt (best and median of ``--rounds``);
* decode: ``--new-tokens`` greedy steps with the KV cache (tokens/s; best and median of ``--rounds``);
* bytes read per decoded token: every weight of the decoder graph (packed INT4/INT8 + scales, or floats)
  plus the KV cache at the mean context length;
* the memory bandwidth measured in the same run (a plain numpy copy in ``--threads`` threads, once per
  round; bytes read + written per second), and from it the bandwidth bound ``bandwidth / bytes per token``
  and the fraction of it each variant reaches (median decode speed);
* with the answer constraint (when available): decoder calls saved by jump-forward per answer.

Each variant lives in its own process (no competing thread pools, one warm-up run); the rounds interleave
the variants (order rotated each round) and measure the copy bandwidth, so machine load hits all alike.

transformers runs ``Qwen2_5_VLForConditionalGeneration``'s language model with a ``DynamicCache`` and
``logits_to_keep=1`` (the same work as our graph: last-position logits), torch threads = ``--threads``.

    python benchmarks/bench_reasoner.py --layers 4 --threads 2 --rounds 3

Writes ``benchmarks/results/reasoner_cpu.json`` and ``.md`` (``--name``). Peak memory: all variants are
loaded at once (about 8 GB at 4 layers of the 3B shape).
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from segzero_edge.evaluation.latency import cpu_model

VARIANTS = ["int4:int8:4", "int4:int4:4", "int4:int8:0", "int8:int8:4", "fp32:fp32:0"]
QUESTION = "the cup the robot should pick up"


def copy_bandwidth(threads: int, mib: int = 512, repeats: int = 5) -> float:
    """Bytes moved (read + write) per second by plain numpy copies in ``threads`` threads (GB/s)."""
    n = mib * 2**20 // 4
    srcs = [np.ones(n, np.float32) for _ in range(threads)]
    dsts = [np.empty(n, np.float32) for _ in range(threads)]
    best = 0.0
    for _ in range(repeats):
        ts = [threading.Thread(target=np.copyto, args=(d, s)) for d, s in zip(dsts, srcs)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        dt = time.perf_counter() - t0
        best = max(best, 2 * n * 4 * threads / dt / 1e9)
    return best


def prompt_inputs(reasoner):
    rng = np.random.default_rng(0)
    shape = (reasoner.settings.num_image_tokens, reasoner.settings.text.hidden_size)
    image = rng.standard_normal(shape).astype(np.float32) * 0.05
    return reasoner.prompt(QUESTION, image)


def _ort_worker(engine: Path, threads: int, new_tokens: int):
    """ONNX Runtime side: returns ``run() -> (prefill s, decode s)`` and the static facts of the engine."""
    from segzero_edge.reasoner import ReasonerPipeline
    from segzero_edge.reasoner.preprocess import decode_position_ids

    r = ReasonerPipeline(engine, device="cpu", threads=threads)
    ids, embeds, positions, delta = prompt_inputs(r)
    backend = r.backend

    def run() -> tuple[float, float]:
        backend.reset()
        t0 = time.perf_counter()
        logits = backend.step(embeds, positions)
        t1 = time.perf_counter()
        for i in range(new_tokens):
            token = int(np.argmax(logits))
            logits = backend.step(backend.embed(np.array([token]))[None], decode_position_ids(ids.size + i, 1, delta))
        return t1 - t0, time.perf_counter() - t1

    s = r.settings
    info = {
        "prompt_tokens": int(ids.size),
        "weight_bytes": sum(s.decoder["weight_bytes"].values()),
        "text": s.text.to_dict(),
        "input_size": s.input_size,
    }
    return run, info


def _torch_worker(checkpoint: Path, engine: Path, threads: int, new_tokens: int):
    """transformers side: the language model of ``Qwen2_5_VLForConditionalGeneration`` with a DynamicCache."""
    import torch
    from transformers import DynamicCache

    from segzero_edge.reasoner import ReasonerPipeline
    from segzero_edge.reference.qwen import load_qwen_model

    torch.set_num_threads(threads)
    r = ReasonerPipeline(engine, device="cpu", threads=1)
    ids, embeds, positions, delta = prompt_inputs(r)
    del r
    model = load_qwen_model(checkpoint, "float32")
    lm = model.model.language_model

    def run() -> tuple[float, float]:
        with torch.inference_mode():
            cache = DynamicCache(config=lm.config)
            t0 = time.perf_counter()
            h = lm(
                inputs_embeds=torch.from_numpy(embeds),
                position_ids=torch.from_numpy(positions),
                past_key_values=cache,
                use_cache=True,
            ).last_hidden_state
            logits = model.lm_head(h[:, -1:])
            t1 = time.perf_counter()
            for i in range(new_tokens):
                token = logits[0, -1].argmax()
                pos = torch.full((3, 1, 1), ids.size + i + delta, dtype=torch.long)
                h = lm(
                    inputs_embeds=lm.embed_tokens(token.view(1, 1)),
                    position_ids=pos,
                    past_key_values=cache,
                    use_cache=True,
                ).last_hidden_state
                logits = model.lm_head(h)
            return t1 - t0, time.perf_counter() - t1

    weight_bytes = (
        sum(
            p.numel() * p.element_size()
            for n, p in model.named_parameters()
            if "language_model.layers" in n or "language_model.norm" in n
        )
        + model.lm_head.weight.numel() * 4
    )
    return run, {"prompt_tokens": int(ids.size), "weight_bytes": weight_bytes}


def worker(conn, kind: str, engine: str, checkpoint: str, threads: int, new_tokens: int) -> None:
    """One variant in its own process (no competing thread pools): answers ``"run"`` with its timings."""
    if kind == "torch":
        run, info = _torch_worker(Path(checkpoint), Path(engine), threads, new_tokens)
    else:
        run, info = _ort_worker(Path(engine), threads, new_tokens)
    run()  # warm-up
    conn.send(info)
    while conn.recv() == "run":
        conn.send(run())
    conn.close()


def interleaved(workers: dict, rounds: int, threads: int) -> tuple[dict, list[float]]:
    """``rounds`` rounds; each round runs every variant once (order rotated) and measures the copy bandwidth."""
    times: dict[str, dict[str, list[float]]] = {k: {"prefill": [], "decode": []} for k in workers}
    bandwidth = []
    names = list(workers)
    for r in range(rounds):
        bandwidth.append(copy_bandwidth(threads))
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            workers[name][0].send("run")
            pre, dec = workers[name][0].recv()
            times[name]["prefill"].append(pre)
            times[name]["decode"].append(dec)
            print(f"round {r + 1}: {name}: prefill {pre:.2f} s, decode {dec:.2f} s", flush=True)
    return times, bandwidth


def jump_forward_savings(engine: Path, threads: int, budget: int) -> dict | None:
    from segzero_edge.errors import BackendUnavailableError
    from segzero_edge.reasoner import GenerationOptions, ReasonerPipeline

    r = ReasonerPipeline(engine, device="cpu", threads=threads)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    try:
        res = r.generate(
            image, QUESTION, GenerationOptions(max_new_tokens=budget + 80, constrained=True, thinking_budget=budget)
        )
    except BackendUnavailableError as exc:
        return {"skipped": str(exc.message)}
    return {
        "thinking_budget": budget,
        "new_tokens": len(res.token_ids),
        "forced_tokens": res.forced_tokens,
        "decoder_calls": res.forward_calls - 1,
        "steps_saved": res.jump_forward_steps_saved,
        "stop_reason": res.stop_reason,
        "text_tail": res.text[-120:],
    }


def _summary(v: dict, new_tokens: int) -> None:
    v["prefill_s"] = min(v["prefill_runs_s"])
    v["prefill_median_s"] = statistics.median(v["prefill_runs_s"])
    v["decode_tokens_per_s"] = new_tokens / min(v["decode_runs_s"])
    v["decode_median_tokens_per_s"] = new_tokens / statistics.median(v["decode_runs_s"])


def markdown(results: dict, args) -> str:
    rows = [
        "| variant (weights:lm_head:accuracy_level) | prefill s (best / median) | decode tok/s (best / median) "
        "| x transformers fp32 (median) | MB read / token | bound tok/s | % of bound (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in results["variants"].items():
        rows.append(
            f"| {name} | {v['prefill_s']:.2f} / {v['prefill_median_s']:.2f} | {v['decode_tokens_per_s']:.2f}"
            f" / {v['decode_median_tokens_per_s']:.2f} | {v['speedup_vs_transformers_fp32']:.2f} | "
            f"{v['bytes_per_token'] / 1e6:.0f} | {v['bandwidth_bound_tokens_per_s']:.1f} | "
            f"{100 * v['fraction_of_bound']:.0f}% |"
        )
    m = results["machine"]
    return (
        f"# reasoner decode benchmark (CPU)\n\n{args.size}-shaped Qwen2.5-VL, {args.layers} decoder layers, "
        f"random weights, prompt {results['prompt_tokens']} tokens ({results['model']['input_size']}x"
        f"{results['model']['input_size']} image), {args.new_tokens} greedy tokens, {args.threads} threads, "
        f"{args.rounds} interleaved rounds (each variant in its own process).\n\n"
        f"Machine: {m['cpu']}, {m['cores']} cores, onnxruntime {m['onnxruntime']}, torch {m['torch']}; "
        f"date {results['date']}; load average start {results['load_start']}, end {results['load_end']}.\n"
        f"Command: `{results['command']}`\n\n"
        f"Copy bandwidth (read+write, {args.threads} threads, per round, GB/s): {results['bandwidth_gb_s']}; "
        f"the bound uses the median ({results['bandwidth_used_gb_s']:.2f} GB/s).\n\n"
        + "\n".join(rows)
        + f"\n\nBytes per token = decoder weights (packed + scales) + KV cache at the mean context.\n\n"
        f"Jump-forward (INT4 engine, answer constraint, thinking budget {args.thinking_budget}): "
        f"{results['jump_forward']}\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="3b", choices=("tiny", "3b", "7b"), help="tiny: a smoke test of the script")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--variants", nargs="*", default=VARIANTS, help="weights:lm_head:accuracy_level")
    ap.add_argument("--thinking-budget", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--name", default="reasoner_cpu", help="result file stem")
    args = ap.parse_args()

    import onnxruntime
    import torch

    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner
    from segzero_edge.reference.builders.qwen import build_tiny_qwen25vl

    results: dict = {
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "threads": args.threads,
            "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__,
        },
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv),
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "model": {"size": args.size, "layers": args.layers},
        "variants": {},
    }
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="segzero-bench-") as tmp:
        ckpt = Path(tmp) / "ckpt"
        build_tiny_qwen25vl(ckpt, args.size, num_layers=args.layers, vision_depth=1, seed=0)
        engines = {}
        for v in args.variants:
            weights, head, acc = v.split(":")
            out = Path(tmp) / f"engine_{weights}_{head}_{acc}"
            export_reasoner(
                ckpt,
                out,
                ReasonerExportConfig(
                    weights=weights, lm_head=head, accuracy_level=int(acc), block_size=args.block_size, validate="none"
                ),
            )
            engines[f"ort {v}"] = out
        ref_engine = engines.get("ort fp32:fp32:0") or next(iter(engines.values()))
        workers, procs = {}, []
        try:
            for name, engine in [*engines.items(), ("transformers fp32", ref_engine)]:
                parent, child = ctx.Pipe()
                kind = "torch" if name.startswith("transformers") else "ort"
                p = ctx.Process(
                    target=worker, args=(child, kind, str(engine), str(ckpt), args.threads, args.new_tokens)
                )
                p.start()
                procs.append(p)
                workers[name] = (parent, parent.recv())  # one at a time: each loads and warms up alone
                print(f"{name}: loaded", flush=True)
            times, bw = interleaved(workers, args.rounds, args.threads)
        finally:
            for parent, _ in workers.values():
                parent.send("stop")
            for p in procs:
                p.join(timeout=60)
        for name, (_, info) in workers.items():
            results["variants"][name] = {
                **info,
                "prefill_runs_s": times[name]["prefill"],
                "decode_runs_s": times[name]["decode"],
            }
            _summary(results["variants"][name], args.new_tokens)
        first = next(v for v in results["variants"].values() if "text" in v)
        text = first["text"]
        results["model"]["input_size"] = first["input_size"]
        results["prompt_tokens"] = first["prompt_tokens"]
        results["bandwidth_gb_s"] = [round(b, 2) for b in bw]
        bandwidth = statistics.median(bw)
        results["bandwidth_used_gb_s"] = bandwidth
        ctx_len = first["prompt_tokens"] + args.new_tokens / 2
        kv_bytes = int(2 * text["num_layers"] * text["num_kv_heads"] * text["head_dim"] * ctx_len * 4)
        base = results["variants"]["transformers fp32"]["decode_median_tokens_per_s"]
        for v in results["variants"].values():
            v["bytes_per_token"] = v["weight_bytes"] + kv_bytes
            v["bandwidth_bound_tokens_per_s"] = bandwidth * 1e9 / v["bytes_per_token"]
            v["fraction_of_bound"] = v["decode_median_tokens_per_s"] / v["bandwidth_bound_tokens_per_s"]
            v["speedup_vs_transformers_fp32"] = v["decode_median_tokens_per_s"] / base
        jf_engine = engines.get("ort int4:int8:4") or ref_engine
        results["jump_forward"] = jump_forward_savings(jf_engine, args.threads, args.thinking_budget)
    results["load_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    md = markdown(results, args)
    (args.out / f"{args.name}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
