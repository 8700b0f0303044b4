"""Prefill time and decode tokens/s of the reasoner: ONNX Runtime INT4 / INT8 / fp32 vs transformers fp32.

One random checkpoint with the real Qwen2.5-VL-3B shapes (vocabulary 151936, hidden 2048, FFN 11008, 16/2
heads) but only ``--layers`` decoder layers is exported at each precision; every variant then runs the
same Seg-Zero-sized request (840x840 input: 900 image tokens + the prompt text, ~1030 tokens) on the same
machine with the same thread count:

* prefill: one decoder call over the whole prompt (best of ``--repeats``);
* decode: ``--new-tokens`` greedy steps with the KV cache (tokens/s, best of ``--repeats``);
* bytes read per decoded token: every weight of the decoder graph (packed INT4/INT8 + scales, or floats)
  plus the KV cache at the mean context length;
* the memory bandwidth measured in the same run (a plain numpy copy, 1 and ``--threads`` threads; bytes
  read + written per second), and from it the bandwidth bound ``bandwidth / bytes per token`` and the
  fraction of it each variant reaches;
* with the answer constraint (when available): decoder calls saved by jump-forward per answer.

transformers runs ``Qwen2_5_VLForConditionalGeneration``'s language model with a ``DynamicCache`` and
``logits_to_keep=1`` (the same work as our graph: last-position logits), torch threads = ``--threads``.

    python benchmarks/bench_reasoner.py --layers 4 --threads 2

Writes ``benchmarks/results/bench_reasoner.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

VARIANTS = ["int4:int8:4", "int4:int8:0", "int4:int4:4", "int8:int8:4", "int8:int8:0", "fp32:fp32:0"]
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
    image = rng.standard_normal((reasoner.num_image_tokens, reasoner.embeddings.shape[1])).astype(np.float32) * 0.05
    return reasoner.prompt(QUESTION, image)


def bench_ort(engine: Path, threads: int, new_tokens: int, repeats: int) -> dict:
    from segzero_edge.reasoner import Reasoner
    from segzero_edge.reasoner.rope import decode_position_ids

    r = Reasoner(engine, device="cpu", threads=threads)
    ids, embeds, positions, delta = prompt_inputs(r)
    prefill, decode = [], []
    for _ in range(repeats):
        r.decoder.reset()
        t0 = time.perf_counter()
        logits = r.decoder(embeds, positions)
        prefill.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(new_tokens):
            token = int(np.argmax(logits))
            logits = r.decoder(r.embed(np.array([token]))[None], decode_position_ids(ids.size + i, 1, delta))
        decode.append(time.perf_counter() - t0)
    s = r.manifest.component("reasoner")
    weight_bytes = sum(s["decoder"]["weight_bytes"].values())
    out = {"prompt_tokens": int(ids.size), "prefill_s": min(prefill), "decode_tokens_per_s": new_tokens / min(decode),
           "weight_bytes": weight_bytes, "text": s["text"], "input_size": s["input_size"]}
    del r
    gc.collect()
    return out


def bench_transformers(checkpoint: Path, engine: Path, threads: int, new_tokens: int, repeats: int) -> dict:
    import torch
    from transformers import DynamicCache

    from segzero_edge.backends.hf_loading import load_qwen_model
    from segzero_edge.reasoner import Reasoner

    torch.set_num_threads(threads)
    r = Reasoner(engine, device="cpu", threads=1)
    ids, embeds, positions, delta = prompt_inputs(r)
    del r
    model = load_qwen_model(checkpoint, "float32")
    lm = model.model.language_model
    prefill, decode = [], []
    with torch.inference_mode():
        for _ in range(repeats):
            cache = DynamicCache(config=lm.config)
            t0 = time.perf_counter()
            h = lm(inputs_embeds=torch.from_numpy(embeds), position_ids=torch.from_numpy(positions),
                   past_key_values=cache, use_cache=True).last_hidden_state
            logits = model.lm_head(h[:, -1:])
            prefill.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for i in range(new_tokens):
                token = logits[0, -1].argmax()
                pos = torch.full((3, 1, 1), ids.size + i + delta, dtype=torch.long)
                h = lm(inputs_embeds=lm.embed_tokens(token.view(1, 1)), position_ids=pos, past_key_values=cache,
                       use_cache=True).last_hidden_state
                logits = model.lm_head(h)
            decode.append(time.perf_counter() - t0)
    weight_bytes = sum(p.numel() * p.element_size() for n, p in model.named_parameters()
                       if "language_model.layers" in n or "language_model.norm" in n) + \
        model.lm_head.weight.numel() * 4
    del model, lm
    gc.collect()
    return {"prompt_tokens": int(ids.size), "prefill_s": min(prefill), "decode_tokens_per_s": new_tokens / min(decode),
            "weight_bytes": weight_bytes}


def jump_forward_savings(engine: Path, threads: int, budget: int) -> dict | None:
    from segzero_edge.errors import BackendUnavailableError
    from segzero_edge.reasoner import GenerationOptions, Reasoner

    r = Reasoner(engine, device="cpu", threads=threads)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    try:
        res = r.generate(image, QUESTION, GenerationOptions(max_new_tokens=budget + 80, constrained=True,
                                                             thinking_budget=budget))
    except BackendUnavailableError as exc:
        return {"skipped": str(exc.message)}
    return {"thinking_budget": budget, "new_tokens": len(res.token_ids), "forced_tokens": res.forced_tokens,
            "decoder_calls": res.forward_calls - 1, "steps_saved": res.jump_forward_steps_saved,
            "stop_reason": res.stop_reason, "text_tail": res.text[-120:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="3b", choices=("tiny", "3b", "7b"), help="tiny: a smoke test of the script")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--variants", nargs="*", default=VARIANTS, help="weights:lm_head:accuracy_level")
    ap.add_argument("--thinking-budget", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()

    from segzero_edge.export.builders.qwen import build_tiny_qwen25vl
    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner

    results: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads},
                     "model": {"size": args.size, "layers": args.layers}, "variants": {}}
    bw1, bwn = copy_bandwidth(1), copy_bandwidth(args.threads)
    results["bandwidth_gb_s"] = {"copy_1_thread": round(bw1, 2), f"copy_{args.threads}_threads": round(bwn, 2)}
    bandwidth = max(bw1, bwn)
    with tempfile.TemporaryDirectory(prefix="segzero-bench-") as tmp:
        ckpt = Path(tmp) / "ckpt"
        build_tiny_qwen25vl(ckpt, args.size, num_layers=args.layers, vision_depth=1, seed=0)
        engines = {}
        for v in args.variants:
            weights, head, acc = v.split(":")
            out = Path(tmp) / f"engine_{weights}_{head}_{acc}"
            export_reasoner(ckpt, out, ReasonerExportConfig(weights=weights, lm_head=head, accuracy_level=int(acc),
                                                            block_size=args.block_size, validate="none"))
            engines[v] = out
            res = bench_ort(out, args.threads, args.new_tokens, args.repeats)
            results["variants"][f"ort {v}"] = res
            print(f"ort {v}: {res['decode_tokens_per_s']:.2f} tok/s, prefill {res['prefill_s']:.2f} s", flush=True)
        ref_engine = engines.get("fp32:fp32:0") or next(iter(engines.values()))
        res = bench_transformers(ckpt, ref_engine, args.threads, args.new_tokens, args.repeats)
        results["variants"]["transformers fp32"] = res
        print(f"transformers fp32: {res['decode_tokens_per_s']:.2f} tok/s, prefill {res['prefill_s']:.2f} s")
        first = next(v for v in results["variants"].values() if "text" in v)
        text = first["text"]
        results["model"]["input_size"] = first["input_size"]
        ctx = next(iter(results["variants"].values()))["prompt_tokens"] + args.new_tokens / 2
        kv_bytes = int(2 * text["num_layers"] * text["num_kv_heads"] * text["head_dim"] * ctx * 4)
        base = results["variants"]["transformers fp32"]["decode_tokens_per_s"]
        for v in results["variants"].values():
            v["bytes_per_token"] = v["weight_bytes"] + kv_bytes
            v["bandwidth_bound_tokens_per_s"] = bandwidth * 1e9 / v["bytes_per_token"]
            v["fraction_of_bound"] = v["decode_tokens_per_s"] / v["bandwidth_bound_tokens_per_s"]
            v["speedup_vs_transformers_fp32"] = v["decode_tokens_per_s"] / base
        jf_engine = engines.get("int4:int8:4") or ref_engine
        results["jump_forward"] = jump_forward_savings(jf_engine, args.threads, args.thinking_budget)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_reasoner.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    rows = ["| variant (weights:lm_head:accuracy_level) | prefill s | decode tok/s | x transformers fp32 | "
            "MB read / token | bound tok/s | % of bound |", "|---|---|---|---|---|---|---|"]
    for name, v in results["variants"].items():
        rows.append(f"| {name} | {v['prefill_s']:.2f} | {v['decode_tokens_per_s']:.2f} | "
                    f"{v['speedup_vs_transformers_fp32']:.2f} | {v['bytes_per_token'] / 1e6:.0f} | "
                    f"{v['bandwidth_bound_tokens_per_s']:.1f} | {100 * v['fraction_of_bound']:.0f}% |")
    md = (f"# reasoner decode benchmark\n\n{args.size}-shaped Qwen2.5-VL, {args.layers} decoder layers, random "
          f"weights, prompt {results['variants']['transformers fp32']['prompt_tokens']} tokens "
          f"({results['model']['input_size']}x{results['model']['input_size']} image), "
          f"{args.new_tokens} greedy tokens, {args.threads} threads.\n\nCopy bandwidth (read+write): "
          f"{results['bandwidth_gb_s']}\n\n" + "\n".join(rows) +
          f"\n\nJump-forward: {results['jump_forward']}\n")
    (args.out / "bench_reasoner.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
