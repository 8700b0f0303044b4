"""Where the SAM2 mask decoder's ONNX Runtime time goes: graph forms and session settings, compared in
one process, interleaved, so machine load hits every variant alike. Writes JSON + a markdown table.

    .venv/bin/python benchmarks/bench_sam2_decoder_forms.py --config sam2.1_hiera_t --threads 1

On a shared, loaded machine use ``--threads 1``: with 2 threads every parallel op waits whenever the
other thread is descheduled, and that noise swamps differences of 10-20%; one thread measures the work.

Variants (all fed the same features and Seg-Zero's prompt, box + 2 points, N = 1):

* ``official modules``: the decoder graph exported from the official ``MaskDecoder`` as it is
  (``LayerNorm2d`` as mean/var ops, GELU as ``0.5 * (1 + erf) * x``), the form before this change;
* ``export form``: ``wrappers.MaskDecoderGraph`` as shipped (channels-last ``layer_norm`` and the GELU
  pattern ONNX Runtime fuses, see export/sam2_export/wrappers.py);

each with ONNX Runtime's default optimizations (``all optimizers``) and with the runtime's CPU setting
(``without SkipLayerNormFusion``, ``segzero_edge.ort.CPU_DISABLED_OPTIMIZERS``). Thread-pool spinning
is off in every session here: idle spinning pools of the other sessions would otherwise steal the
cores of the one being timed. Also timed: one ``SkipLayerNormalization`` vs ``Add`` + ``LayerNormalization``
on [1, 4096, 256] (the shape of the decoder's image tokens).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from segzero_edge.sam2 import contract as sam2_contract

log = logging.getLogger("bench_sam2_decoder_forms")


def _session(model, threads: int, disabled: list[str] | None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"], disabled_optimizers=disabled)


def _export_forms(config: str, work: Path) -> dict[str, Path]:
    from segzero_edge.export.sam2_export import onnx_export
    from segzero_edge.export.sam2_export.wrappers import MaskDecoderGraph
    from segzero_edge.reference.builders.sam2 import build_sam2_checkpoint
    from segzero_edge.reference.sam2_model import load_sam2_model

    class OfficialModules(MaskDecoderGraph):
        def __init__(self, model) -> None:
            super().__init__(model)
            self.mask_decoder = model.sam_mask_decoder

    model = load_sam2_model(build_sam2_checkpoint(work / "ckpt.pt", config, seed=0), config)
    paths = {"export form": work / "export_form.onnx", "official modules": work / "official.onnx"}
    onnx_export.export_mask_decoder(model, paths["export form"], opset=18, max_objects=16, max_points=16)
    shipped = onnx_export.MaskDecoderGraph
    try:
        onnx_export.MaskDecoderGraph = OfficialModules
        onnx_export.export_mask_decoder(model, paths["official modules"], opset=18, max_objects=16, max_points=16)
    finally:
        onnx_export.MaskDecoderGraph = shipped
    return paths


def _feeds(n: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    box_points = np.array([[[205, 256], [716, 853], [410, 512], [512, 614]]], np.float32)  # 1024 space
    return {
        sam2_contract.IMAGE_EMBED: rng.standard_normal((1, 256, 64, 64), dtype=np.float32),
        sam2_contract.HIGH_RES_FEATS_0: rng.standard_normal((1, 32, 256, 256), dtype=np.float32),
        sam2_contract.HIGH_RES_FEATS_1: rng.standard_normal((1, 64, 128, 128), dtype=np.float32),
        sam2_contract.POINT_COORDS: np.repeat(box_points, n, 0),
        sam2_contract.POINT_LABELS: np.repeat(np.array([[2, 3, 1, 1]], np.float32), n, 0),
        sam2_contract.MASK_INPUT: np.zeros((n, 1, 256, 256), np.float32),
        sam2_contract.HAS_MASK_INPUT: np.zeros((n,), np.float32),
    }


def _skip_layernorm_models() -> dict[str, bytes]:
    import onnx
    from onnx import TensorProto, helper

    rows, d = 4096, 256
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, rows, d]) for n in ("x", "s", "y")]
    rng = np.random.default_rng(0)
    inits = [onnx.numpy_helper.from_array(rng.random(d, dtype=np.float32), n) for n in ("g", "b")]
    fused = [helper.make_node("SkipLayerNormalization", ["x", "s", "g", "b"], ["y"], domain="com.microsoft")]
    plain = [
        helper.make_node("Add", ["x", "s"], ["t"]),
        helper.make_node("LayerNormalization", ["t", "g", "b"], ["y"], axis=-1, epsilon=1e-12),
    ]
    out = {}
    for name, nodes, ops in (
        ("SkipLayerNormalization", fused, [("", 18), ("com.microsoft", 1)]),
        ("Add + LayerNormalization", plain, [("", 18)]),
    ):
        graph = helper.make_graph(nodes, name, io[:2], io[2:], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid(*o) for o in ops], ir_version=9)
        out[name] = model.SerializeToString()
    return out


def _interleave(fns: dict, rounds: int, runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for r in range(rounds):
        for name in list(fns) if r % 2 == 0 else list(fns)[::-1]:
            for _ in range(runs):
                t0 = time.perf_counter()
                fns[name]()
                times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def _rows(times: dict[str, list[float]], runs: int) -> list[dict]:
    base = statistics.median(next(iter(times.values())))
    rows = []
    for name, ms in times.items():
        per_round = [statistics.median(ms[i : i + runs]) for i in range(0, len(ms), runs)]
        rows.append(
            {
                "variant": name,
                "median_ms": round(statistics.median(ms), 2),
                "min_ms": round(min(ms), 2),
                "round_medians_ms": [round(x, 1) for x in per_round],
                "speedup_vs_first": round(base / statistics.median(ms), 3),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="sam2.1_hiera_t", help="official SAM2 config")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default: 2)")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds (default: 8)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per variant and round (default: 3)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for sam2_decoder_forms_<threads>t.json/.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import onnxruntime as ort

    from segzero_edge.ort import CPU_DISABLED_OPTIMIZERS

    load_start = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="sam2_forms_") as tmp:
        paths = _export_forms(args.config, Path(tmp))
        feeds = _feeds()
        sessions = {}
        for form in ("official modules", "export form"):
            for label, disabled in (("all optimizers", None), ("without SkipLayerNormFusion", CPU_DISABLED_OPTIMIZERS)):
                sessions[f"{form}, {label}"] = _session(str(paths[form]), args.threads, list(disabled or []))
        decoder = _interleave(
            {k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()}, args.rounds, args.runs
        )
    x = np.random.default_rng(1).standard_normal((1, 4096, 256), dtype=np.float32)
    skip = np.random.default_rng(2).standard_normal((1, 4096, 256), dtype=np.float32)
    kernels = {k: _session(m, args.threads, ["SkipLayerNormFusion"]) for k, m in _skip_layernorm_models().items()}
    kernel = _interleave(
        {k: (lambda s=s: s.run(None, {"x": x, "s": skip})) for k, s in kernels.items()}, args.rounds, args.runs
    )
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "config": args.config,
        "threads": args.threads,
        "rounds": args.rounds,
        "runs": args.runs,
        "onnxruntime": ort.__version__,
        "cores": os.cpu_count(),
        "load_start": load_start,
        "load_end": [round(v, 2) for v in os.getloadavg()],
        "decoder_n1": _rows(decoder, args.runs),
        "skip_layernorm_1x4096x256": _rows(kernel, args.runs),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"sam2_decoder_forms_{args.threads}t.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# SAM2 mask decoder on ONNX Runtime {report['onnxruntime']}: graph forms and session settings",
        "",
        f"Date {report['date']}. Command: `{report['command']}`. {report['cores']} cores (shared machine), "
        f"{args.threads} intra-op threads, spinning off; load average at start {load_start}, end "
        f"{report['load_end']}. {args.rounds} interleaved rounds x {args.runs} runs; median, min and the "
        "median of each round (the spread). speedup is relative to the first row.",
        "",
    ]
    for title, key in (
        (f"Decoder graph, {args.config}, N = 1, box + 2 points", "decoder_n1"),
        ("One op on [1, 4096, 256] (1 node vs 2 nodes)", "skip_layernorm_1x4096x256"),
    ):
        lines += [f"## {title}", "", "| variant | median (ms) | min (ms) | per-round medians (ms) | speedup |"]
        lines.append("|---|---:|---:|---|---:|")
        for r in report[key]:
            lines.append(
                f"| {r['variant']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | "
                f"{', '.join(f'{v:.0f}' for v in r['round_medians_ms'])} | {r['speedup_vs_first']:.2f}x |"
            )
        lines.append("")
    (out / f"sam2_decoder_forms_{args.threads}t.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
