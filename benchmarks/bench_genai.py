#!/usr/bin/env python3
"""onnxruntime-genai 0.18 vs the segzero-edge numpy generation loop, on the same Qwen2.5-VL weights.

Two interpreters, never mixed in one process (``onnxruntime`` and the ``onnxruntime`` that onnxruntime-genai pulls
must not share a venv):
  --repo-python   .venv/bin/python          (segzero_edge, onnxruntime 1.32)
  --genai-python  .cache/genai/venv/bin/python (onnxruntime-genai 0.18.0 with its own onnxruntime; for the builder
                  also torch==2.13.0 under constraints.txt, transformers, onnx, onnx-ir, onnxscript)

Model directories for genai are made by genai_models.py (next to this file) from a segzero-edge engine:
  builder_<p>  the genai model builder's decoder (exclude_embeds=true), project vision.onnx, generated embedding.onnx
  project_<p>  the project's own decoder graph (logits unsqueezed to [1,1,V]), same vision/embedding

Subcommands (the workers print one JSON line; `run` orchestrates everything):
  scenes        write N world scenes (PNG + question + project pixel_values/prompt ids) to a folder (repo python)
  w-project     project worker: speed | tokens | parse                                            (repo python)
  w-genai       genai worker:   speed | tokens | parse                                            (genai python)
  run           all measurements, interleaved; writes results.json and results.md

    python3 benchmarks/bench_genai.py run --out benchmarks/results ...   (see --help; the commands of the recorded
    run are in benchmarks/results/genai.md)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
INPUT_SIZE_DEFAULT = 224


# ----------------------------------------------------------------------------------------------- helpers
def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def int_range_regex(n: int) -> str:
    """Regex for the integers 0..n written without leading zeros."""
    s = str(n)
    out = ["0"]
    for length in range(1, len(s)):
        out.append("[1-9]" + "[0-9]" * (length - 1))
    for i in range(len(s)):
        d, lo = int(s[i]), (1 if i == 0 else 0)
        if i == len(s) - 1:
            if d >= lo:
                out.append(s[:i] + (f"[{lo}-{d}]" if d > lo else str(d)))
        elif d > lo:
            out.append(s[:i] + f"[{lo}-{d - 1}]" + "[0-9]" * (len(s) - 1 - i))
    return "(" + "|".join(out) + ")"


def seg_zero_lark(input_size: int, thinking_budget: int | None = None, budget_form: str = "stop") -> str:
    """The Seg-Zero answer grammar for llguidance (Lark syntax), as close to segzero_edge's constraint as llguidance
    allows: free think text closed by </think>, up to 2 spaces/newlines, <answer>, the canonical JSON skeleton with
    integers in [0, input_size] and one optional space after commas in lists, </answer>, then EOS.

    thinking_budget: the think lexeme gets max_tokens=N and a stop="</think>" form so that </think> is forced when
    the budget runs out (llguidance 'stop' lexeme). NOTE: in genai 0.18 this form panics inside llguidance when the
    model closes the think itself before the budget ("num_rows=2 row_infos=1")."""
    num = int_range_regex(input_size)
    body = (
        'body: "{\\"bbox\\": [" NUM SEP NUM SEP NUM SEP NUM "], \\"points_1\\": [" NUM SEP NUM '
        '"], \\"points_2\\": [" NUM SEP NUM "]}"'
    )
    if thinking_budget is not None and budget_form == "lazy":
        # no panic, but when the budget cuts the think, "</think>" is NOT forced: the model may go on with
        # spaces / "<answer>" (ANS_OPEN), so the text can lack "</think>"
        head = (
            'start: think ANS_OPEN body "</answer>"\n'
            f"think[lazy, max_tokens={int(thinking_budget)}]: /(.|\\n)*<\\/think>/\n"
        )
    elif thinking_budget is None:
        head = 'start: think ANS_OPEN body "</answer>"\nthink[lazy]: /(.|\\n)*<\\/think>/\n'
    else:
        head = (
            'start: think "</think>" ANS_OPEN body "</answer>"\n'
            f'think[stop="</think>", max_tokens={int(thinking_budget)}]: /(.|\\n)*/\n'
        )
    ans_open = (
        "ANS_OPEN: /(<\\/think>)?[ \\n]{0,2}<answer>/\n"
        if thinking_budget is not None and budget_form == "lazy"
        else "ANS_OPEN: /[ \\n]{0,2}<answer>/\n"
    )
    return "%llguidance {}\n" + head + ans_open + body + f"\nSEP: /, ?/\nNUM: /{num}/\n"


# ----------------------------------------------------------------------------------------------- scenes
def cmd_scenes(a) -> None:
    import numpy as np
    from PIL import Image

    from segzero_edge.reasoner import ReasonerPipeline
    from segzero_edge.reasoner.preprocess import preprocess_image
    from segzero_edge.world.scenes import generate_queries, generate_scene

    r = ReasonerPipeline(a.engine, device="cpu", threads=1)
    out = Path(a.dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    items = []
    kinds = ["attribute", "relation", "superlative", "indirect"]
    for i in range(a.count):
        scene = generate_scene(rng, r.preprocess_config.input_size)
        queries = generate_queries(scene, rng, r.preprocess_config.input_size)
        want = kinds[i % len(kinds)]
        q = next((x for x in queries if x.kind == want), queries[0])
        png = out / f"scene_{i:03d}.png"
        Image.fromarray(scene.image).save(png)
        pre = preprocess_image(str(png), r.preprocess_config)
        ids = r.tokenizer.encode_prompt(q.text, r.num_image_tokens)
        np.save(out / f"scene_{i:03d}_pv.npy", pre.pixel_values)
        np.save(out / f"scene_{i:03d}_ids.npy", ids)
        from segzero_edge.prompt import render_chat

        items.append(
            {
                "png": str(png),
                "question": q.text,
                "kind": q.kind,
                "prompt": render_chat(q.text),
                "pv": str(out / f"scene_{i:03d}_pv.npy"),
                "ids": str(out / f"scene_{i:03d}_ids.npy"),
            }
        )
    (out / "scenes.json").write_text(json.dumps(items, indent=1))
    print(
        json.dumps(
            {
                "scenes": len(items),
                "grid_thw": list(r.preprocess_config.grid_thw),
                "num_image_tokens": r.num_image_tokens,
            }
        )
    )


def _request(a):
    """(png, question, pixel_values path, ids path) of the speed/token request."""
    return a.image, a.question, a.pv, a.ids


# ----------------------------------------------------------------------------------------------- project worker
def cmd_w_project(a) -> None:
    from segzero_edge import decode_answer
    from segzero_edge.reasoner import GenerationOptions, ReasonerPipeline

    t0 = time.perf_counter()
    r = ReasonerPipeline(a.engine, device="cpu", threads=a.threads, io_binding=True if a.io_binding else None)
    load_s = time.perf_counter() - t0
    out: dict = {"load_s": load_s}
    if a.mode == "speed":
        if a.no_eos:
            r.eos_ids = ()
        opts = GenerationOptions(max_new_tokens=a.max_new, constrained=False, stop_at_answer=False)
        r.generate(a.image, a.question, opts)  # warm-up
        runs = []
        for _ in range(a.reps):
            res = r.generate(a.image, a.question, opts)
            n = len(res.token_ids)
            runs.append(
                {
                    "tokens": n,
                    "prefill_ms": res.timings_ms["prefill"],
                    "vision_ms": res.timings_ms["vision"],
                    "preprocess_ms": res.timings_ms["preprocess"],
                    "ttft_ms": res.timings_ms["total"] - res.timings_ms["decode"],
                    "decode_tok_s": (n - 1) / (res.timings_ms["decode"] / 1e3),
                }
            )
        out["runs"] = runs
    elif a.mode == "tokens":
        items = json.loads(Path(a.scenes).read_text())[: a.count]
        seqs = []
        for it in items:
            res = r.generate(
                it["png"],
                it["question"],
                GenerationOptions(max_new_tokens=a.max_new, constrained=False, stop_at_answer=False),
            )
            seqs.append([int(t) for t in res.token_ids])
        out["seqs"] = seqs
    elif a.mode == "parse":
        items = json.loads(Path(a.scenes).read_text())[: a.count]
        rows = []
        for it in items:
            opts = GenerationOptions(
                max_new_tokens=a.max_new, constrained=a.constrained, thinking_budget=a.budget, stop_at_answer=True
            )
            t1 = time.perf_counter()
            res = r.generate(it["png"], it["question"], opts)
            dt = time.perf_counter() - t1
            ans = decode_answer(res.text, model_size=r.preprocess_config.input_size)
            rows.append(
                {
                    "ok": bool(ans.ok),
                    "tokens": len(res.token_ids),
                    "calls": res.forward_calls - 1,
                    "forced": res.forced_tokens,
                    "saved": res.jump_forward_steps_saved,
                    "s": dt,
                    "text": res.text,
                    "error": None if ans.ok else str(ans.error),
                }
            )
        out["rows"] = rows
    out["peak_rss_mb"] = peak_rss_mb()
    out["loadavg_1m"] = os.getloadavg()[0]
    print(json.dumps(out))


# ----------------------------------------------------------------------------------------------- genai worker
def _genai_inputs(og, np, pv_path, ids_path, grid):
    ids = np.load(ids_path)
    nt = og.NamedTensors()
    nt["input_ids"] = ids[None].astype(np.int32)
    nt["pixel_values"] = np.load(pv_path)
    nt["image_grid_thw"] = np.array([grid], np.int64)
    nt["num_image_tokens"] = np.array([grid[0] * grid[1] * grid[2] // 4], np.int64)
    return nt, int(ids.size)


def _set_threads(model_dir: str, threads: int) -> str:
    """genai reads intra_op_num_threads from genai_config.json: write a per-thread-count copy of the config."""
    src = Path(model_dir)
    dst = src.parent / f"{src.name}__t{threads}"
    dst.mkdir(exist_ok=True)
    for f in src.iterdir():
        if f.name != "genai_config.json" and not (dst / f.name).exists():
            os.symlink(f.resolve(), dst / f.name)
    gc = json.loads((src / "genai_config.json").read_text())
    for part in ("decoder", "embedding", "vision"):
        so = gc["model"][part].setdefault("session_options", {})
        so["intra_op_num_threads"] = threads
        so["inter_op_num_threads"] = 1
    (dst / "genai_config.json").write_text(json.dumps(gc, indent=1))
    return str(dst)


def cmd_w_genai(a) -> None:
    import numpy as np
    import onnxruntime_genai as og

    from_dir = _set_threads(a.model, a.threads)
    t0 = time.perf_counter()
    model = og.Model(og.Config(from_dir))
    tok = og.Tokenizer(model)
    load_s = time.perf_counter() - t0
    grid = [int(x) for x in a.grid.split(",")]
    out: dict = {"load_s": load_s}

    def run_one(pv, ids_path, max_new, guidance=None, ff=False, no_eos=False, budget_host=None, native=None):
        if native is not None:  # genai's own processor: image file + prompt text
            proc = model.create_multimodal_processor()
            t_p = time.perf_counter()
            nt = proc(native[1], images=og.Images.open(native[0]))
            proc_ms = (time.perf_counter() - t_p) * 1e3
            plen = int(nt["input_ids"].as_numpy().shape[1])
        else:
            nt, plen = _genai_inputs(og, np, pv, ids_path, grid)
            proc_ms = 0.0
        p = og.GeneratorParams(model)
        so = {"max_length": plen + max_new, "do_sample": False}
        if no_eos:
            so["min_length"] = plen + max_new
        p.set_search_options(**so)
        if guidance is not None:
            p.set_guidance("lark_grammar", guidance, enable_ff_tokens=ff)
        try:
            g = og.Generator(model, p)
        except RuntimeError as exc:  # e.g. PoisonError after an llguidance panic in an earlier request
            return {
                "seq": [],
                "steps": 0,
                "ttft_ms": 0.0,
                "decode_s": 0.0,
                "proc_ms": 0.0,
                "error": "Generator(): " + str(exc).splitlines()[0][:300],
            }
        t1 = time.perf_counter()
        g.set_inputs(nt)
        steps, err = 0, None
        t_first = None
        try:
            while not g.is_done():
                g.generate_next_token()
                steps += 1
                if t_first is None:
                    t_first = time.perf_counter()
        except RuntimeError as exc:
            err = str(exc).splitlines()[0][:300]
        t2 = time.perf_counter()
        seq = [int(x) for x in g.get_sequence(0)[plen:]]
        return {
            "seq": seq,
            "steps": steps,
            "ttft_ms": ((t_first or t2) - t1) * 1e3 + proc_ms,
            "decode_s": t2 - (t_first or t2),
            "proc_ms": proc_ms,
            "error": err,
        }

    if a.mode == "speed":
        run_one(a.pv, a.ids, a.max_new, no_eos=a.no_eos)  # warm-up
        runs = []
        for _ in range(a.reps):
            r = run_one(a.pv, a.ids, a.max_new, no_eos=a.no_eos)
            n = len(r["seq"])
            runs.append({"tokens": n, "ttft_ms": r["ttft_ms"], "decode_tok_s": (n - 1) / r["decode_s"]})
        out["runs"] = runs
    elif a.mode == "tokens":
        items = json.loads(Path(a.scenes).read_text())[: a.count]
        out["seqs"] = [run_one(it["pv"], it["ids"], a.max_new)["seq"] for it in items]
        if a.native:
            out["seqs_native"] = [
                run_one(None, None, a.max_new, native=(it["png"], it["prompt"]))["seq"] for it in items
            ]
    elif a.mode == "parse":
        items = json.loads(Path(a.scenes).read_text())[: a.count]
        grammar = seg_zero_lark(a.input_size, a.budget, a.budget_form) if a.guidance else None
        rows = []
        for it in items:
            t1 = time.perf_counter()
            r = run_one(it["pv"], it["ids"], a.max_new, guidance=grammar, ff=a.ff)
            if r["error"] and r["error"].startswith("Generator()"):  # does a fresh og.Model recover?
                model = og.Model(og.Config(from_dir))
                r2 = run_one(it["pv"], it["ids"], a.max_new, guidance=grammar, ff=a.ff)
                r["error"] += " | after reloading og.Model: " + (r2["error"] or "ok")
                if not r2["error"] or not r2["error"].startswith("Generator()"):
                    r = {**r2, "error": r["error"]}
            dt = time.perf_counter() - t1
            text = tok.decode(np.array(r["seq"], np.int32)) if r["seq"] else ""
            rows.append({"text": text, "tokens": len(r["seq"]), "steps": r["steps"], "s": dt, "error": r["error"]})
        out["rows"] = rows
        out["grammar"] = grammar
    out["peak_rss_mb"] = peak_rss_mb()
    out["loadavg_1m"] = os.getloadavg()[0]
    print(json.dumps(out))


# ----------------------------------------------------------------------------------------------- orchestration
def _worker(py: str, args: list[str], timeout: int = 3600) -> dict:
    cmd = [py, str(Path(__file__).resolve()), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _parse_ok_texts(repo_py: str, texts: list[str], input_size: int) -> list[dict]:
    code = (
        "import json,sys; from segzero_edge import decode_answer; t=json.load(sys.stdin); "
        f"print(json.dumps([{{'ok': bool(a.ok), 'error': None if a.ok else str(a.error)}} for a in "
        f"(decode_answer(x, model_size={input_size}) for x in t)]))"
    )
    p = subprocess.run([repo_py, "-c", code], input=json.dumps(texts), capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def _med(xs):
    return statistics.median(xs) if xs else float("nan")


EOS_IDS = (560, 562)  # <|endoftext|>, <|im_end|> of the Qwen tokenizer family used here


def _strip_eos(seq):
    """genai's get_sequence() leaves out the final EOS that the project loop keeps in token_ids."""
    seq = list(seq)
    while seq and seq[-1] in EOS_IDS:
        seq.pop()
    return seq


def _prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def cmd_run(a) -> None:
    res: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count()},
        "command": " ".join(sys.argv),
    }
    vers = {}
    for name, py, mods in (
        ("repo", a.repo_python, "onnxruntime,numpy,transformers"),
        ("genai", a.genai_python, "onnxruntime_genai,onnxruntime,numpy"),
    ):
        code = f"import json,importlib; print(json.dumps({{m: importlib.import_module(m).__version__ for m in '{mods}'.split(',')}}))"  # noqa: E501 (a markdown table row)
        vers[name] = json.loads(subprocess.run([py, "-c", code], capture_output=True, text=True, check=True).stdout)
    res["versions"] = vers
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        res["machine"]["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))

    # 1. speed: interleaved rounds, each variant a fresh process (warm-up + reps timed runs)
    speed = []
    for setup in a.speed_setups:  # "label|engine|genai_dir_prefix|image|question|pv|ids|grid|max_new|no_eos"
        label, engine, gdir, image, question, pv, ids, grid, max_new, no_eos = setup.split("|")
        for threads in a.threads:
            variants = (
                [("project loop", "p", engine)]
                + ([("project loop io_binding", "pb", engine)] if a.project_io_binding else [])
                + [(f"genai {v}", "g", f"{gdir}/{v}") for v in a.genai_variants if Path(f"{gdir}/{v}").exists()]
            )
            samples = {v[0]: {"runs": [], "rss": []} for v in variants}
            for rnd in range(a.rounds):
                order = variants[rnd % len(variants) :] + variants[: rnd % len(variants)]
                for name, kind, path in order:
                    common = [
                        "--threads",
                        str(threads),
                        "--mode",
                        "speed",
                        "--reps",
                        str(a.reps),
                        "--max-new",
                        max_new,
                        "--image",
                        image,
                        "--question",
                        question,
                        "--pv",
                        pv,
                        "--ids",
                        ids,
                    ]
                    if no_eos == "1":
                        common.append("--no-eos")
                    if kind in ("p", "pb"):
                        r = _worker(
                            a.repo_python,
                            ["w-project", "--engine", path, *common, *(["--io-binding"] if kind == "pb" else [])],
                        )
                    else:
                        r = _worker(a.genai_python, ["w-genai", "--model", path, "--grid", grid, *common])
                    for x in r["runs"]:
                        x["loadavg_1m"] = r.get("loadavg_1m")
                    samples[name]["runs"] += r["runs"]
                    samples[name].setdefault("all_tok_s", []).extend(round(x["decode_tok_s"], 2) for x in r["runs"])
                    samples[name]["rss"].append(r["peak_rss_mb"])
                    print(
                        f"[speed] {label} t={threads} round {rnd} {name}: "
                        f"{_med([x['decode_tok_s'] for x in r['runs']]):.1f} tok/s",
                        flush=True,
                    )
            for name, s in samples.items():
                row = {
                    "setup": label,
                    "threads": threads,
                    "variant": name,
                    "tokens": _med([x["tokens"] for x in s["runs"]]),
                    "decode_tok_s": _med([x["decode_tok_s"] for x in s["runs"]]),
                    "ttft_ms": _med([x["ttft_ms"] for x in s["runs"]]),
                    "peak_rss_mb": _med(s["rss"]),
                    "samples": len(s["runs"]),
                    "all_decode_tok_s": s.get("all_tok_s", []),
                    "loadavg_1m_median": _med([x["loadavg_1m"] for x in s["runs"] if x.get("loadavg_1m") is not None]),
                }
                if "prefill_ms" in s["runs"][0]:
                    row["prefill_ms"] = _med([x["prefill_ms"] for x in s["runs"]])
                    row["vision_ms"] = _med([x["vision_ms"] for x in s["runs"]])
                    row["preprocess_ms"] = _med([x["preprocess_ms"] for x in s["runs"]])
                speed.append(row)
    res["speed"] = speed

    # 2. greedy token agreement (fp32), world scenes
    if a.scenes:
        n, sc = str(a.count), a.scenes
        ref = _worker(
            a.repo_python,
            [
                "w-project",
                "--engine",
                a.tok_engine,
                "--threads",
                "2",
                "--mode",
                "tokens",
                "--scenes",
                sc,
                "--count",
                n,
                "--max-new",
                str(a.tok_max_new),
            ],
        )["seqs"]
        ref = [_strip_eos(x) for x in ref]
        agree = []
        for v in a.genai_variants_fp32:
            g = _worker(
                a.genai_python,
                [
                    "w-genai",
                    "--model",
                    f"{a.tok_genai}/{v}",
                    "--threads",
                    "2",
                    "--mode",
                    "tokens",
                    "--scenes",
                    sc,
                    "--count",
                    n,
                    "--max-new",
                    str(a.tok_max_new),
                    "--grid",
                    a.grid,
                    *(["--native"] if v == a.genai_variants_fp32[0] else []),
                ],
            )
            for key, label in (("seqs", "project pixel_values"), ("seqs_native", "genai processor")):
                if key not in g:
                    continue
                g[key] = [_strip_eos(x) for x in g[key]]
                pre = [_prefix(x, y) for x, y in zip(ref, g[key])]
                agree.append(
                    {
                        "variant": f"genai {v}",
                        "inputs": label,
                        "requests": len(ref),
                        "identical": sum(x == y for x, y in zip(ref, g[key])),
                        "mean_ref_tokens": statistics.mean(len(x) for x in ref),
                        "mean_common_prefix": statistics.mean(pre),
                        "min_common_prefix": min(pre),
                    }
                )
        res["token_agreement"] = agree

        # 3. parse rate / constraint / jump-forward / budget
        parse = []
        specs = [
            ("project loop", "unconstrained", ["--engine", a.tok_engine], {}),
            ("project loop", "answer constraint (jump-forward)", ["--engine", a.tok_engine], {"c": 1}),
        ]
        specs += [
            ("project loop", f"answer constraint, budget {b}", ["--engine", a.tok_engine], {"c": 1, "b": b})
            for b in a.budget
        ]
        gv = f"{a.tok_genai}/{a.genai_variants_fp32[0]}"
        specs += [
            (f"genai {a.genai_variants_fp32[0]}", "unconstrained", ["--model", gv], {}),
            (f"genai {a.genai_variants_fp32[0]}", "lark grammar, ff_tokens off", ["--model", gv], {"gd": 1}),
            (f"genai {a.genai_variants_fp32[0]}", "lark grammar, ff_tokens on", ["--model", gv], {"gd": 1, "ff": 1}),
        ]
        specs += [
            (
                f"genai {a.genai_variants_fp32[0]}",
                f"lark grammar + think[{form}, max_tokens={b}], ff on",
                ["--model", gv],
                {"gd": 1, "ff": 1, "b": b, "form": form},
            )
            for form in ("stop", "lazy")
            for b in a.budget
        ]
        for name, label, target, o in specs:
            args = [
                *target,
                "--threads",
                "2",
                "--mode",
                "parse",
                "--scenes",
                sc,
                "--count",
                n,
                "--max-new",
                str(a.parse_max_new),
            ]
            if o.get("c"):
                args.append("--constrained")
            if o.get("b") is not None:
                args += ["--budget", str(o["b"])]
            if o.get("gd"):
                args += ["--guidance", "--input-size", str(a.input_size)]
            if o.get("ff"):
                args.append("--ff")
            if o.get("form"):
                args += ["--budget-form", o["form"]]
            if name.startswith("project"):
                r = _worker(a.repo_python, ["w-project", *args])
                rows = r["rows"]
                calls = [x["calls"] for x in rows]
            else:
                r = _worker(a.genai_python, ["w-genai", *args, "--grid", a.grid])
                rows = r["rows"]
                for x in rows:
                    x["has_think_close"] = "</think>" in x["text"]
                oks = _parse_ok_texts(a.repo_python, [x["text"] for x in rows], a.input_size)
                for x, ok in zip(rows, oks):
                    x["ok"], x["parse_error"], x["runtime_error"] = ok["ok"], ok["error"], x.pop("error")
                calls = [x["steps"] for x in rows]
            errors = [x.get("parse_error", x.get("error")) for x in rows if not x.get("ok")]
            rt = [x["runtime_error"] for x in rows if x.get("runtime_error")]
            gen_errors = sorted({e.split(" | ")[0] for e in rt})
            parse.append(
                {
                    "variant": name,
                    "setting": label,
                    "requests": len(rows),
                    "parse_rate": sum(x["ok"] for x in rows) / len(rows),
                    "mean_tokens": statistics.mean(x["tokens"] for x in rows),
                    "mean_generation_steps": statistics.mean(calls),
                    "median_request_s": _med([x["s"] for x in rows]),
                    "runtime_errors": len(rt) if name.startswith("genai") else 0,
                    "texts_with_think_close": sum("</think>" in x["text"] for x in rows),
                    "runtime_error_messages": gen_errors[:3],
                    "example_text": rows[0]["text"][:300],
                    "parse_errors": sorted({str(e)[:80] for e in errors})[:4],
                }
            )
            print(f"[parse] {name} / {label}: {parse[-1]['parse_rate']:.3f}", flush=True)
        res["parse"] = parse
        res["grammar"] = seg_zero_lark(a.input_size)
        res["grammar_budget"] = seg_zero_lark(a.input_size, a.budget[0])

    out = Path(a.out)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    (out / "results.md").write_text(render_md(res))
    print((out / "results.md").read_text())


def render_md(res: dict) -> str:
    L = [
        f"# onnxruntime-genai vs segzero-edge loop ({res['date']})",
        "",
        f"Machine: {res['machine']}. Versions: {json.dumps(res['versions'])}.",
        "",
    ]
    if res.get("speed"):
        L += [
            "## Speed (greedy; medians over rounds x reps, every variant in its own fresh process, rounds interleaved)",
            "",
            "| setup | run | threads | variant | tokens | decode tok/s (median) | decode tok/s samples | time to first token ms | prefill ms (project) | peak RSS MB | load 1m |",  # noqa: E501 (a markdown table row)
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in res["speed"]:
            pf = f"{r['prefill_ms']:.1f} (+vision {r['vision_ms']:.1f})" if "prefill_ms" in r else "-"
            smp = ", ".join(f"{x:.0f}" if x >= 100 else f"{x:.1f}" for x in r.get("all_decode_tok_s", []))
            L.append(
                f"| {r['setup']} | {r.get('run', '')} | {r['threads']} | {r['variant']} | {r['tokens']:.0f} | {r['decode_tok_s']:.1f} | {smp} | "  # noqa: E501 (a markdown table row)
                f"{r['ttft_ms']:.0f} | {pf} | {r['peak_rss_mb']:.0f} | {r.get('loadavg_1m_median', float('nan')):.2f} |"
            )
        L.append("")
    if res.get("notes"):
        L += (
            ["Notes:", ""]
            + [f"- {k}: {json.dumps(v) if not isinstance(v, str) else v}" for k, v in res["notes"].items()]
            + [""]
        )
    if res.get("token_agreement"):
        L += [
            "## Greedy token agreement with the project loop (fp32 world reasoner, unconstrained)",
            "",
            "| variant | genai inputs | requests | identical | mean common prefix | min common prefix | mean project tokens |",  # noqa: E501 (a markdown table row)
            "|---|---|---|---|---|---|---|",
        ]
        for r in res["token_agreement"]:
            L.append(
                f"| {r['variant']} | {r['inputs']} | {r['requests']} | {r['identical']} | {r['mean_common_prefix']:.1f} | "  # noqa: E501 (a markdown table row)
                f"{r['min_common_prefix']} | {r['mean_ref_tokens']:.1f} |"
            )
        L.append("")
    if res.get("parse"):
        L += [
            "## Answer parse rate (`segzero_edge.decode_answer(text).ok`), world scenes, greedy",
            "",
            "| variant | setting | requests | parse rate | outputs with </think> | mean tokens | mean generation steps | runtime errors |",  # noqa: E501 (a markdown table row)
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in res["parse"]:
            L.append(
                f"| {r['variant']} | {r['setting']} | {r['requests']} | {r['parse_rate']:.3f} | "
                f"{r.get('texts_with_think_close', '-')} | {r['mean_tokens']:.1f} | "
                f"{r['mean_generation_steps']:.1f} | {r['runtime_errors']} {'; '.join(r['runtime_error_messages'])[:160]} |"  # noqa: E501 (a markdown table row)
            )
        L += ["", "Generation steps: project = decoder calls after the prefill; genai = generate_next_token calls.", ""]
        L += [
            "Grammar (llguidance Lark, genai `params.set_guidance('lark_grammar', g, enable_ff_tokens=...)`):",
            "",
            "```",
            res["grammar"],
            "```",
            "",
            "With a thinking budget N the think rule becomes:",
            "",
            "```",
            "\n".join(
                line for line in res.get("grammar_budget", "").splitlines() if line.startswith(("start", "think"))
            ),
            "```",
            "",
        ]
    return "\n".join(L) + "\n"


def cmd_merge(a) -> None:
    """Merge several results.json (e.g. a speed run and an accuracy run) into one results.json / results.md."""
    res: dict = {}
    for p in a.inputs:
        part = json.loads(Path(p).read_text())
        for k, v in part.items():
            if isinstance(v, list) and isinstance(res.get(k), list):
                res[k] = res[k] + v
            elif v or k not in res:
                res[k] = v
    out = Path(a.out)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    (out / "results.md").write_text(render_md(res))
    print((out / "results.md").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scenes")
    s.add_argument("--engine", required=True)
    s.add_argument("--dir", required=True)
    s.add_argument("--count", type=int, default=50)
    s.add_argument("--seed", type=int, default=12345)
    for name in ("w-project", "w-genai"):
        w = sub.add_parser(name)
        w.add_argument("--engine") if name == "w-project" else w.add_argument("--model")
        w.add_argument("--threads", type=int, default=1)
        w.add_argument("--mode", choices=["speed", "tokens", "parse"], required=True)
        w.add_argument("--reps", type=int, default=3)
        w.add_argument("--max-new", type=int, default=128)
        w.add_argument("--no-eos", action="store_true")
        w.add_argument("--image")
        w.add_argument("--question")
        w.add_argument("--pv")
        w.add_argument("--ids")
        w.add_argument("--grid", default="1,16,16")
        w.add_argument("--scenes")
        w.add_argument("--count", type=int, default=50)
        w.add_argument("--constrained", action="store_true")
        w.add_argument("--budget", type=int, default=None)
        w.add_argument("--guidance", action="store_true")
        w.add_argument("--ff", action="store_true")
        w.add_argument("--native", action="store_true")
        w.add_argument("--io-binding", action="store_true", help="project: ReasonerPipeline(io_binding=True) on CPU")
        w.add_argument("--budget-form", choices=["stop", "lazy"], default="stop")
        w.add_argument("--input-size", type=int, default=INPUT_SIZE_DEFAULT)
    r = sub.add_parser("run")
    r.add_argument("--repo-python", default=".venv/bin/python")
    r.add_argument("--genai-python", default=".cache/genai/venv/bin/python")
    r.add_argument(
        "--speed-setups",
        nargs="*",
        default=[],
        help="label|engine|genai_dir|image|question|pixel_values.npy|ids.npy|grid t,h,w|max_new|no_eos(0/1)",
    )
    r.add_argument("--genai-variants", nargs="*", default=["builder_fp32", "project_fp32"])
    r.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    r.add_argument("--project-io-binding", action="store_true", help="also time ReasonerPipeline(io_binding=True)")
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--reps", type=int, default=3)
    r.add_argument("--scenes", default=None)
    r.add_argument("--count", type=int, default=50)
    r.add_argument("--tok-engine", required=True, help="fp32 engine of the token/parse comparison (world fp32)")
    r.add_argument("--tok-genai", required=True, help="genai_models.py output for that engine")
    r.add_argument("--genai-variants-fp32", nargs="*", default=["builder_fp32", "project_fp32"])
    r.add_argument("--tok-max-new", type=int, default=256)
    r.add_argument("--parse-max-new", type=int, default=256)
    r.add_argument("--budget", type=int, nargs="*", default=[16, 200])
    r.add_argument("--grid", default="1,16,16")
    r.add_argument("--input-size", type=int, default=INPUT_SIZE_DEFAULT)
    r.add_argument("--out", default=str(HERE))
    m = sub.add_parser("merge")
    m.add_argument("inputs", nargs="+")
    m.add_argument("--out", default=str(HERE))
    a = ap.parse_args()
    {"merge": cmd_merge, "scenes": cmd_scenes, "w-project": cmd_w_project, "w-genai": cmd_w_genai, "run": cmd_run}[
        a.cmd
    ](a)


if __name__ == "__main__":
    main()
