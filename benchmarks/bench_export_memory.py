"""Peak memory of `export reasoner` on real-shaped Qwen2.5-VL checkpoints with fewer layers, extrapolated.

For each layer count, a random checkpoint with the real 3B (or 7B) shapes (full vocabulary, full 32-block
vision tower, bf16 weights like the official releases) is built in a separate process; then the real
export runs in a child process while this script samples the child's RSS every 20 ms and attributes it
to the export phase named by the child's log lines (embeddings, decoder, vision, validation phases).
Each phase's peak is fitted as ``a + b * layers`` and extrapolated to the full model (36 layers for 3B,
28 for 7B); the export's peak is the largest phase.

    python benchmarks/bench_export_memory.py --size 3b --layers 1 3 --weights int4
    python benchmarks/bench_export_memory.py --size 7b --layers 1 2 --weights int4

Writes ``benchmarks/results/export_memory_<size>_<weights>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

FULL_LAYERS = {"3b": 36, "7b": 28}
BUDGET_GB = {"3b": 24, "7b": 64}
PHASES = [  # (log text, phase name)
    ("exporting /", "inspect"),
    ("writing the token embeddings", "embeddings"),
    ("writing the decoder graph", "decoder"),
    ("exporting the vision tower", "vision"),
    ("validation phase 1/3", "validate_transformers_fp32"),
    ("validation phase 2/3", "validate_onnxruntime"),
    ("validation phase 3/3", "validate_dequantized_torch"),
    ("wrote the reasoner component", "commit"),
]

CHILD = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner
cfg = ReasonerExportConfig(weights=sys.argv[3], validate="quick", validation_pairs=1, validation_tokens=4, threads=2)
export_reasoner(sys.argv[1], sys.argv[2], cfg)
"""


def build(size: str, layers: int, out: Path) -> None:
    code = ("import sys; from segzero_edge.export.builders.qwen import build_tiny_qwen25vl; "
            "build_tiny_qwen25vl(sys.argv[1], sys.argv[2], num_layers=int(sys.argv[3]), dtype='bfloat16')")
    subprocess.run([sys.executable, "-c", code, str(out), size, str(layers)], check=True)


def measure(checkpoint: Path, weights: str, workdir: Path) -> dict:
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(checkpoint), str(workdir / "engine"), weights],
                            stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    phase = ["startup"]
    peaks: dict[str, float] = {}
    lines: list[str] = []

    def read_log() -> None:
        for line in proc.stderr:
            lines.append(line)
            for text, name in PHASES:
                if text in line:
                    phase[0] = name

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    start = time.perf_counter()
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss / 2**30
        except psutil.NoSuchProcess:
            break
        peaks[phase[0]] = max(peaks.get(phase[0], 0.0), rss)
        time.sleep(0.02)
    reader.join(timeout=10)
    if proc.returncode:
        raise SystemExit("export failed:\n" + "".join(lines[-30:]))
    return {"seconds": round(time.perf_counter() - start, 1),
            "phase_peak_gb": {k: round(v, 3) for k, v in peaks.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(FULL_LAYERS), default="3b")
    ap.add_argument("--layers", type=int, nargs=2, default=[1, 3], help="two layer counts to fit on")
    ap.add_argument("--weights", default="int4", choices=("int4", "int8", "fp16", "fp32"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    runs = {}
    for layers in args.layers:
        with tempfile.TemporaryDirectory(prefix="segzero-mem-") as tmp:
            ckpt = Path(tmp) / "ckpt"
            build(args.size, layers, ckpt)
            runs[layers] = measure(ckpt, args.weights, Path(tmp))
            print(f"{args.size} {layers} layers: {runs[layers]}", flush=True)
    l1, l2 = args.layers
    full = FULL_LAYERS[args.size]
    phases = sorted(set(runs[l1]["phase_peak_gb"]) & set(runs[l2]["phase_peak_gb"]))
    fit = {}
    for ph in phases:
        p1, p2 = runs[l1]["phase_peak_gb"][ph], runs[l2]["phase_peak_gb"][ph]
        per_layer = (p2 - p1) / (l2 - l1)
        fit[ph] = {"per_layer_gb": round(per_layer, 4), "extrapolated_gb": round(p1 + per_layer * (full - l1), 2)}
    peak_phase = max(fit, key=lambda k: fit[k]["extrapolated_gb"])
    result = {"size": args.size, "weights": args.weights, "full_layers": full, "runs": runs, "fit": fit,
              "extrapolated_peak_gb": fit[peak_phase]["extrapolated_gb"], "peak_phase": peak_phase,
              "budget_gb": BUDGET_GB[args.size],
              "fits": fit[peak_phase]["extrapolated_gb"] <= BUDGET_GB[args.size]}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"export_memory_{args.size}_{args.weights}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [f"| phase | peak GB @ {l1} layers | peak GB @ {l2} layers | GB per layer | extrapolated GB @ {full} |",
            "|---|---|---|---|---|"]
    rows += [f"| {ph} | {runs[l1]['phase_peak_gb'][ph]:.2f} | {runs[l2]['phase_peak_gb'][ph]:.2f} | "
             f"{fit[ph]['per_layer_gb']:.3f} | {fit[ph]['extrapolated_gb']:.2f} |" for ph in phases]
    rows.append(f"\nExtrapolated peak: **{result['extrapolated_peak_gb']} GB** ({peak_phase}); budget "
                f"{BUDGET_GB[args.size]} GB -> {'fits' if result['fits'] else 'DOES NOT FIT'}.")
    stem.with_suffix(".md").write_text(f"# export reasoner peak RSS, {args.size}-shaped, {args.weights}\n\n"
                                       + "\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
