"""Peak memory and time of `export reasoner` per phase on real-shaped Qwen2.5-VL checkpoints with fewer
layers, extrapolated to the full depth.

For each layer count, a random checkpoint with the real 3B (or 7B) shapes (full vocabulary, full 32-block
vision tower, bf16 weights like the official releases) is built in a separate process; then the real
export runs in a child process while this script samples the child's RSS every 20 ms and attributes it
to the export phase named by the child's log lines (embeddings, decoder, vision, validation phases), and
times each phase. Each phase's peak and seconds are fitted as ``a + b * layers`` (least squares over all
layer counts, with the largest residual reported) and extrapolated to the full model (36 layers for 3B, 28
for 7B); the export's peak is the largest phase. A phase's memory counts as flat in depth (extrapolated as
the largest value measured, marked "flat") when its fitted change across the measured layer counts is
negative or within the run-to-run noise (``NOISE_GB``): with three points, a slope inside the noise is not
evidence of per-layer growth, and extrapolating it 28x turns 0.1 GB of noise into gigabytes. When the full
depth is among ``--layers`` (deeper than ``BUILD_MAX_LAYERS``: built with ``deepen``), its column is the
measurement itself. Both VmRSS and RssAnon (without file-backed pages) are recorded, next to the exporter's
own estimate (``memory_plan``) that its memory check uses.

    python benchmarks/bench_export_memory.py --size 3b --layers 1 2 4 --weights int4
    python benchmarks/bench_export_memory.py --size 7b --layers 1 2 3 --weights int4 --validate full
    python benchmarks/bench_export_memory.py --size 7b --layers 1 2 3 28 --reuse   # adds the real depth

Writes ``benchmarks/results/export_memory_<size>_<weights>.json`` and ``.md``, and each run as
``export_memory_<size>_<weights>_<layers>l.json`` (``_quick``/``_none`` after ``<weights>`` for those
levels; ``--reuse`` adds layer counts without redoing those).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

FULL_LAYERS = {"3b": 36, "7b": 28}
#: the memory of the machine the README promises the export fits on
BUDGET_GB = {"3b": 24, "7b": 24}
PHASES = [  # (log text, phase name)
    ("exporting /", "inspect"),
    ("writing the token embeddings", "embeddings"),
    ("writing the decoder graph", "decoder"),
    ("exporting the vision tower", "vision"),
    ("validation phase 1/3", "validate_onnxruntime"),
    ("validation phase 2/3", "validate_transformers_fp32"),
    ("validation phase 3/3", "validate_dequantized_torch"),
    ("wrote the reasoner component", "commit"),
]
#: the exporter's own estimate (``memory_plan``) of each phase, by the names above
PLAN_STAGES = {
    "embeddings": "embeddings",
    "decoder": "decoder",
    "vision": "vision",
    "validate_onnxruntime": "validate_onnxruntime",
    "validate_transformers_fp32": "validate_transformers",
    "validate_dequantized_torch": "validate_transformers",
}

CHILD = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from segzero_edge.export.reasoner_export.checkpoint import WeightReader, inspect_checkpoint
from segzero_edge.export.reasoner_export.memory_plan import plan_export_memory
from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner
cfg = ReasonerExportConfig(weights=sys.argv[3], validate=sys.argv[4], threads=2, memory_check=False)
ckpt = inspect_checkpoint(sys.argv[1])
plan = plan_export_memory(WeightReader(ckpt.weight_files), ckpt.config, cfg, cfg.decoder_precision())
print("MEMORY_PLAN " + json.dumps(plan.stages), file=sys.stderr, flush=True)
if len(sys.argv) > 5 and sys.argv[5] == "plan-only":
    raise SystemExit(0)
export_reasoner(sys.argv[1], sys.argv[2], cfg)
"""


#: deeper checkpoints are built with one layer and deepened shard by shard (``deepen``): the builder holds
#: the whole model in memory, 16.6 GB of bf16 for the 28-layer 7B, too close to this machine's 24 GB
BUILD_MAX_LAYERS = 6


def build(size: str, layers: int, out: Path) -> None:
    code = (
        "import sys; from segzero_edge.reference.builders.qwen import build_tiny_qwen25vl; "
        "build_tiny_qwen25vl(sys.argv[1], sys.argv[2], num_layers=int(sys.argv[3]), dtype='bfloat16')"
    )
    first = layers if layers <= BUILD_MAX_LAYERS else 1
    subprocess.run([sys.executable, "-c", code, str(out), size, str(first)], check=True)
    if layers > first:
        deepen(out, layers)


def deepen(ckpt: Path, layers: int, seed: int = 0) -> None:
    """Give a 1-layer checkpoint ``layers`` decoder layers: layer ``i`` is written as its own safetensors
    shard with layer 0's names, shapes and dtypes (norm weights copied, every other tensor drawn from
    N(0, 0.02) under ``seed + i``, like the builder's init), and the config's depth is updated."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    config_path = ckpt / "config.json"
    config = json.loads(config_path.read_text())
    for cfg in (config, config.get("text_config", {})):
        if "num_hidden_layers" in cfg:
            cfg["num_hidden_layers"] = layers
        if "layer_types" in cfg:
            cfg["layer_types"] = [cfg["layer_types"][0]] * layers
    (shard,) = ckpt.glob("*.safetensors")
    with safe_open(str(shard), "pt") as f:
        names = f.keys()  # safe_open is not iterable
        layer0 = {k: f.get_tensor(k) for k in names if ".layers.0." in k and "visual" not in k}
    if not layer0:
        raise SystemExit(f"{shard}: no decoder layer 0 to copy the shapes of")
    for i in range(1, layers):
        gen = torch.Generator().manual_seed(seed + i)
        tensors = {}
        for name, t in layer0.items():
            new = name.replace(".layers.0.", f".layers.{i}.")
            if "norm" in name:
                tensors[new] = t.clone()
            else:
                tensors[new] = (torch.randn(t.shape, generator=gen) * 0.02).to(t.dtype)
        save_file(tensors, str(ckpt / f"model-layer-{i:03d}.safetensors"), metadata={"format": "pt"})
        del tensors
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def _rss(pid: int) -> tuple[float, float]:
    """``(RSS, anonymous RSS)`` of ``pid`` in GB from /proc (file-backed pages are the difference)."""
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "RssAnon:")):
                key, kb = line.split()[:2]
                vals[key] = int(kb) * 1024 / 2**30
    return vals["VmRSS:"], vals["RssAnon:"]


def measure(checkpoint: Path, weights: str, validate: str, workdir: Path) -> dict:
    cmd = [sys.executable, "-c", CHILD, str(checkpoint), str(workdir / "engine"), weights, validate]
    return run_sampled(cmd, PHASES)


def run_sampled(cmd: list[str], phases: list[tuple[str, str]]) -> dict:
    """Run ``cmd``, sampling its RSS every 20 ms: the peak and the seconds of each phase, a phase starting
    at the first log line (stderr) containing its text; a ``MEMORY_PLAN {json}`` line is kept as the plan."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    phase = ["startup"]
    peaks: dict[str, float] = {}
    anon: dict[str, float] = {}
    lines: list[str] = []
    entered: dict[str, float] = {"startup": time.perf_counter()}
    plan: dict[str, int] = {}

    def read_log() -> None:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("MEMORY_PLAN "):
                plan.update(json.loads(line[len("MEMORY_PLAN ") :]))
            for text, name in phases:
                if text in line:
                    phase[0] = name
                    entered[name] = time.perf_counter()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    start = time.perf_counter()
    while proc.poll() is None:
        try:
            rss, rss_anon = _rss(proc.pid)
        except (OSError, KeyError):  # exited between poll() and the read
            break
        peaks[phase[0]] = max(peaks.get(phase[0], 0.0), rss)
        anon[phase[0]] = max(anon.get(phase[0], 0.0), rss_anon)
        time.sleep(0.02)
    reader.join(timeout=10)
    end = time.perf_counter()
    if proc.returncode:
        raise SystemExit("export failed:\n" + "".join(lines[-30:]))
    order = sorted(entered, key=entered.__getitem__)
    seconds = {ph: round((entered[nxt] if nxt else end) - entered[ph], 1) for ph, nxt in zip(order, [*order[1:], None])}
    return {
        "seconds": round(end - start, 1),
        "phase_seconds": seconds,
        "plan_gb": {k: round(v / 1e9, 3) for k, v in plan.items()},
        "phase_peak_gb": {k: round(v, 3) for k, v in peaks.items()},
        "phase_peak_anon_gb": {k: round(v, 3) for k, v in anon.items()},
    }


def fit_line(xs: list[int], ys: list[float]) -> tuple[float, float, float]:
    """Least-squares ``y = a + b x``: ``(a, b, largest |residual|)``."""
    import numpy as np

    b, a = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    resid = max(abs(a + b * x - y) for x, y in zip(xs, ys))
    return float(a), float(b), float(resid)


#: run-to-run spread of one phase's peak at one depth on this machine (the vision export at 1 layer: 9.02,
#: 9.07 and 9.30 GB in three runs): a fitted change over the measured depths below it is not growth
NOISE_GB = 0.3


def extrapolate(xs: list[int], ys: list[float], target: int, memory: bool) -> dict:
    """The value at ``target`` layers: measured when ``target`` is among ``xs``, else the least-squares fit.
    Memory is flat (the largest measured value) when the fitted change over ``xs`` is negative or within
    noise (``NOISE_GB``, or twice the largest residual): no phase needs less memory with more layers.
    Seconds never fall below the fastest measured run, for the same reason."""
    a, b, resid = fit_line(xs, ys)
    flat = memory and b * (max(xs) - min(xs)) <= max(NOISE_GB, 2 * resid)
    value = max(ys) if flat else a + b * target
    if not memory:
        value = max(value, min(ys))
    if target in xs:
        value, flat = ys[xs.index(target)], False
    return {
        "intercept": round(a, 3),
        "per_layer": round(b, 4),
        "max_residual": round(resid, 3),
        "flat": flat,
        "extrapolated": round(value, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(FULL_LAYERS), default="3b")
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 2, 4], help="layer counts to fit on (>= 2)")
    ap.add_argument("--weights", default="int4", choices=("int4", "int8", "fp16", "fp32"))
    ap.add_argument("--validate", default="full", choices=("full", "quick", "none"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument(
        "--replan",
        action="store_true",
        help="with --reuse: rebuild each checkpoint only to recompute the exporter's estimate (memory_plan)",
    )
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the per-layer-count runs already saved in --out (export_memory_<size>_<w>_<n>l.json)",
    )
    args = ap.parse_args()
    if len(set(args.layers)) < 2:
        raise SystemExit("--layers needs at least two different layer counts")
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv),
        "machine": platform.platform(),
        "cores": os.cpu_count(),
        "threads": 2,
        "load_start": [round(x, 2) for x in os.getloadavg()],
    }
    runs = {}
    stem_name = f"export_memory_{args.size}_{args.weights}" + ("" if args.validate == "full" else f"_{args.validate}")
    args.out.mkdir(parents=True, exist_ok=True)
    for layers in args.layers:
        saved = args.out / f"{stem_name}_{layers}l.json"
        if args.reuse and saved.is_file():
            runs[layers] = json.loads(saved.read_text())
            print(f"{args.size} {layers} layers: reusing {saved.name}", flush=True)
            if args.replan:
                with tempfile.TemporaryDirectory(prefix="segzero-mem-") as tmp:
                    ckpt = Path(tmp) / "ckpt"
                    build(args.size, layers, ckpt)
                    cmd = [sys.executable, "-c", CHILD, str(ckpt), str(Path(tmp) / "e"), args.weights, args.validate]
                    err = subprocess.run([*cmd, "plan-only"], capture_output=True, text=True, check=True).stderr
                plan = json.loads(next(x for x in err.splitlines() if x.startswith("MEMORY_PLAN "))[12:])
                runs[layers]["plan_gb"] = {k: round(v / 1e9, 3) for k, v in plan.items()}
                saved.write_text(json.dumps(runs[layers], indent=2) + "\n")
            continue
        with tempfile.TemporaryDirectory(prefix="segzero-mem-") as tmp:
            ckpt = Path(tmp) / "ckpt"
            build(args.size, layers, ckpt)
            runs[layers] = {
                **measure(ckpt, args.weights, args.validate, Path(tmp)),
                "layers": layers,
                "command": info["command"],
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "load_end": [round(x, 2) for x in os.getloadavg()],
            }
        saved.write_text(json.dumps(runs[layers], indent=2) + "\n")
        print(f"{args.size} {layers} layers: {runs[layers]}", flush=True)
    info["load_end"] = [round(x, 2) for x in os.getloadavg()]
    full = FULL_LAYERS[args.size]
    ls = list(args.layers)
    phases = [ph for _, ph in [("", "startup"), *PHASES] if all(ph in runs[n]["phase_peak_gb"] for n in ls)]
    fit = {}
    for ph in phases:
        entry = {}
        for kind, key in (("rss", "phase_peak_gb"), ("anon", "phase_peak_anon_gb"), ("seconds", "phase_seconds")):
            ys = [runs[n].get(key, {}).get(ph, 0.0) for n in ls]
            entry[kind] = extrapolate(ls, ys, full, memory=kind != "seconds")
        stage = PLAN_STAGES.get(ph)
        if stage and all(stage in runs[n].get("plan_gb", {}) for n in ls):
            a, b, _ = fit_line(ls, [runs[n]["plan_gb"][stage] for n in ls])
            entry["estimate_gb"] = round(a + b * full, 2)
        fit[ph] = entry
    peak_phase = max(fit, key=lambda k: fit[k]["rss"]["extrapolated"])
    peak = fit[peak_phase]["rss"]["extrapolated"]
    result = {
        "size": args.size,
        "weights": args.weights,
        "full_layers": full,
        **info,
        "runs": runs,
        "fit": fit,
        "extrapolated_peak_gb": peak,
        "peak_phase": peak_phase,
        "measured_max_gb": max(max(r["phase_peak_gb"].values()) for r in runs.values()),
        "validate": args.validate,
        "budget_gb": BUDGET_GB[args.size],
        "fits": peak <= BUDGET_GB[args.size],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / stem_name
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    head = " | ".join(f"RSS GB @ {n}" for n in ls) + " | " + " | ".join(f"s @ {n}" for n in ls)
    rows = [
        f"| phase | {head} | GB per layer (fit) | max residual GB | RSS GB @ {full} | anon GB @ {full} "
        f"| exporter's estimate GB @ {full} | s @ {full} |",
        "|---" * (2 * len(ls) + 7) + "|",
    ]
    for ph in phases:
        f = fit[ph]
        rows.append(
            f"| {ph} | "
            + " | ".join(f"{runs[n]['phase_peak_gb'][ph]:.2f}" for n in ls)
            + " | "
            + " | ".join(f"{runs[n].get('phase_seconds', {}).get(ph, 0.0):.0f}" for n in ls)
            + f" | {f['rss']['per_layer']:.3f} | {f['rss']['max_residual']:.2f} | "
            f"{f['rss']['extrapolated']:.2f}{' (flat)' if f['rss']['flat'] else ''} | "
            f"{f['anon']['extrapolated']:.2f}{' (flat)' if f['anon']['flat'] else ''} | "
            f"{f.get('estimate_gb', float('nan')):.2f} | {f['seconds']['extrapolated']:.0f} |"
        )
    total_s = sum(fit[ph]["seconds"]["extrapolated"] for ph in phases)
    validation_s = sum(fit[ph]["seconds"]["extrapolated"] for ph in phases if ph.startswith("validate"))
    result["extrapolated_seconds"] = round(total_s, 1)
    result["extrapolated_validation_seconds"] = round(validation_s, 1)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    how = "Measured" if full in ls else "Extrapolated"
    rows.append(
        f"\n{how} peak RSS at {full} layers: **{peak} GB** ({peak_phase}); budget {BUDGET_GB[args.size]} GB -> "
        f"{'fits' if result['fits'] else 'DOES NOT FIT'}. Largest RSS measured in these runs: "
        f"{result['measured_max_gb']:.2f} GB. {how} time at {full} layers: **{total_s / 60:.1f} min** "
        f"({validation_s / 60:.1f} min of it validation, --validate {args.validate}, 2 threads)."
    )
    md = (
        f"# export reasoner peak RSS and time, {args.size}-shaped, {args.weights}, --validate {args.validate}\n\n"
        f"Real {args.size} shapes (full vocabulary, full vision tower, bf16 weights), {ls} decoder layers; per-phase "
        f"peak RSS (VmRSS; anon = RssAnon, without file-backed pages) sampled every 20 ms, fitted by least squares "
        f"and extrapolated to {full} layers; (flat): the fit's change over the measured depths is negative or within "
        f"the run-to-run noise ({NOISE_GB} GB), so the largest measured value is reported; at a measured depth the "
        f"value is the measurement.\n\n"
        f"Date {info['date']}, {info['machine']}, {info['cores']} cores, "
        f"load average start {info['load_start']}, end {info['load_end']}.\nCommand: `{info['command']}`\n\n"
        + "\n".join(rows)
        + "\n"
    )
    stem.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
