"""Peak memory and time of `segzero-edge export sam2` per phase, for a real-size SAM2 (random weights).

A random checkpoint of the official config (default ``sam2.1_hiera_l``, 224M parameters) is built with the
project's builder; the real export (image encoder, prompt encoder + mask decoder, validation against the
official model, then the tracker's graphs and their validation against the official video predictor) runs in
a child process whose RSS is sampled every 20 ms and attributed to the phase named by its log lines.

    python benchmarks/bench_export_sam2.py --config sam2.1_hiera_l

Writes ``benchmarks/results/export_sam2_<config>.json`` and ``.md``.
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
from pathlib import Path

from bench_export_memory import run_sampled

PHASES = [
    ("sam2: exporting the image encoder", "image_encoder"),
    ("sam2: exporting the prompt encoder", "mask_decoder"),
    ("sam2: validating", "validate_sam2"),
    ("tracker: exporting", "tracker_graphs"),
    ("tracker: validating", "validate_tracker"),
    ("exported the tracker", "commit"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="sam2.1_hiera_l", help="official SAM2 config (default: sam2.1_hiera_l)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv),
        "machine": platform.platform(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "load_start": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="segzero-sam2mem-") as tmp:
        ckpt = Path(tmp) / "sam2.pt"
        code = "import sys; from segzero_edge.reference.builders import build_sam2_checkpoint; "
        code += "build_sam2_checkpoint(sys.argv[1], sys.argv[2])"
        subprocess.run([sys.executable, "-c", code, str(ckpt), args.config], check=True)
        info["checkpoint_mb"] = round(ckpt.stat().st_size / 1e6, 1)
        cmd = [sys.executable, "-m", "segzero_edge", "export", "sam2", "--checkpoint", str(ckpt)]
        cmd += ["--config", args.config, "--out", str(Path(tmp) / "engine"), "--threads", str(args.threads)]
        run = run_sampled(cmd, PHASES)
        engine_mb = sum(f.stat().st_size for f in (Path(tmp) / "engine").rglob("*") if f.is_file()) / 1e6
    info["load_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {"config": args.config, **info, **run, "engine_mb": round(engine_mb, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"export_sam2_{args.config.replace('.', '_')}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    rows = ["| phase | peak RSS GB | peak anon GB | seconds |", "|---|---|---|---|"]
    for phase, peak in run["phase_peak_gb"].items():
        rows.append(
            f"| {phase} | {peak:.2f} | {run['phase_peak_anon_gb'][phase]:.2f} | "
            f"{run['phase_seconds'].get(phase, 0.0):.0f} |"
        )
    peak = max(run["phase_peak_gb"].values())
    md = (
        f"# export sam2 peak RSS and time, {args.config} (random weights, real size)\n\n"
        f"Checkpoint {info['checkpoint_mb']} MB; engine written {result['engine_mb']} MB (sam2 + tracker).\n"
        f"Date {info['date']}, {info['machine']}, {info['cores']} cores, {args.threads} threads, load average start "
        f"{info['load_start']}, end {info['load_end']}.\nCommand: `{info['command']}`\n\n"
        + "\n".join(rows)
        + f"\n\nPeak RSS **{peak:.2f} GB**; total **{run['seconds'] / 60:.1f} min**.\n"
    )
    stem.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
