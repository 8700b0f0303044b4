"""Write ``benchmarks/RESULTS.md`` from the JSON files in ``benchmarks/results/`` (nothing is typed by hand).

    .venv/bin/python benchmarks/make_results.py            # regenerate RESULTS.md
    .venv/bin/python benchmarks/make_results.py --check    # exit 1 when RESULTS.md is out of date

Table-driven: each ``Section`` names the JSON files it reads (first match wins, glob patterns allowed), the
command that reproduces them, and a function turning one loaded file into table rows. A file that does not
exist yet gives a "not yet measured" row naming the command; a file whose layout the function does not know
(another engineer changed it) gives a "layout not recognised" row listing its keys instead of failing. To add
a section, write a ``rows`` function and append a ``Section`` to ``SECTIONS``.

Each row carries the machine, the command and the date: from the JSON when it records them, else the date of
the commit that last changed the file (``git log``), else the file's modification time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUT = HERE / "RESULTS.md"

Row = list[str]


class UnknownLayout(Exception):
    """The file exists but its fields are not the ones the section reads."""


@dataclass(frozen=True)
class Section:
    """One comparison of RESULTS.md.

    Attributes:
        title, what: heading and one paragraph saying what is compared and how it was measured.
        files: candidate file names / glob patterns under ``results/`` (every match is a block of rows).
        command: how to produce the file (used when the JSON does not record its own command).
        columns: table header; ``rows(data)`` returns the table rows of one file (raise ``UnknownLayout``
            or let KeyError/TypeError escape when the layout is not the expected one).
    """

    title: str
    what: str
    files: tuple[str, ...]
    command: str
    columns: tuple[str, ...]
    rows: Callable[[dict[str, Any]], list[Row]]


def _f(v: Any, nd: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    return f"{v:,.{nd}f}"


# -- per-file row functions --------------------------------------------------------------------------------


def answer_rows(d: dict) -> list[Row]:
    rows = [
        [
            f"decode_answer, {case}",
            _f(v["python_us_median"], 2),
            _f(v["native_us_median"], 2),
            f"{v['ratio_median']:.1f}x",
        ]
        for case, v in d["decode"].items()
    ]
    s = d["stream"]
    rows.append(
        [
            "stream decoding, per text piece",
            _f(s["python_us_per_piece"], 3),
            _f(s["native_us_per_piece"], 3),
            f"{s['ratio']:.1f}x",
        ]
    )
    c = d.get("constraint") or {}
    if c:
        rows.append(
            [
                f"answer constraint step, vocab {c['vocab_size']:,} (think / answer)",
                "–",
                f"{_f(c['think_step_us'], 1)} / {_f(c['answer_step_us'], 1)}",
                "–",
            ]
        )
    return rows


def sam2_rows(d: dict) -> list[Row]:
    rows = []
    for block in d["results"]:
        cfg = Path(block["config"]).stem
        for r in block["rows"]:
            rows.append([f"{cfg}: {r['stage']}", _f(r["torch_ms"]), _f(r["ours_ms"]), f"{r['speedup']:.2f}x"])
    return rows


def tracker_rows(d: dict) -> list[Row]:
    rows = []
    for r in d["results"]:
        o, u = r["official"], r["ours"]
        rows.append(
            [
                f"{Path(r['config']).stem if r['config'].endswith('.yaml') else r['config']}, "
                f"{r.get('objects', 1)} object(s)",
                _f(o["full_bank_median_ms"]),
                _f(u["full_bank_median_ms"]),
                f"{r['speedup_full_bank']:.2f}x",
                _f(u["fps_full_bank"]),
            ]
        )
    return rows


def track_vs_predict_rows(d: dict) -> list[Row]:
    pt = d["predict_vs_track"]
    return [
        [
            f"{Path(pt['engine']).name}: {pt['text']!r}, {pt['frames']} frames",
            _f(pt["predict_ms_p50"]),
            _f(pt["predict_fps"]),
            _f(pt["track_update_ms_p50"]),
            _f(pt["track_fps"]),
            f"{pt['track_over_predict']:.0f}x",
        ]
    ]


def ros_node_rows(d: dict) -> list[Row]:
    return [
        [
            f"{r['fps_in']:g}",
            str(r["sent"]),
            str(r["received"]),
            str(r["waiting"]),
            str(r["dropped"]),
            str(r["published"]),
            f"{_f(r['latency_ms_p50'])} / {_f(r['latency_ms_p90'])}",
            f"{_f(r['age_ms_p50_subscriber'])} / {_f(r['age_ms_p90_subscriber'])}",
            _f(r["fps_out"]),
        ]
        for r in d["results"]
    ]


def reasoner_rows(d: dict) -> list[Row]:
    variants = d.get("variants")
    if not isinstance(variants, dict):
        raise UnknownLayout("no 'variants' table")
    rows = []
    for name, v in variants.items():
        tps = v.get("decode_median_tokens_per_s", v.get("decode_tokens_per_s"))
        rows.append(
            [
                name,
                _f(v.get("prefill_median_s", v.get("prefill_s")), 2),
                _f(tps, 2),
                f"{v['speedup_vs_transformers_fp32']:.2f}x" if "speedup_vs_transformers_fp32" in v else "–",
                _f(v["bytes_per_token"] / 1e6, 0) if "bytes_per_token" in v else "–",
                _f(100 * v["fraction_of_bound"], 0) if "fraction_of_bound" in v else "–",
            ]
        )
    return rows


def segmenter_rows(d: dict) -> list[Row]:
    """Overlap / cache per engine and thread setting (the layout ``bench_segmenter.py`` writes)."""
    engines = d.get("engines")
    if not isinstance(engines, dict) or not engines:
        raise UnknownLayout("no 'engines' table")
    rows = []
    for name, eng in engines.items():
        for st in eng.get("settings", []):
            med = st.get("medians_ms")
            if not isinstance(med, dict):
                continue
            seq, ovl, cached = med["sequential"], med["overlap"], med.get("cached", {})
            target = max(seq["reasoning"], seq["encoding"]) + seq["decoding"] + seq["pre_post"]
            rows.append(
                [
                    f"{name} ({st['threads']}/{st['sam2_threads']} threads)",
                    _f(seq["total"]),
                    _f(ovl["total"]),
                    _f(cached.get("total")),
                    _f(target),
                    _f(ovl["total"] / target, 2),
                ]
            )
    if not rows:
        raise UnknownLayout("no finished settings")
    return rows


def bench_rows(d: dict) -> list[Row]:
    if d.get("schema") != "segzero-edge.bench/1":
        raise UnknownLayout("not a segzero-edge bench report")
    rows = [[name, _f(s["p50"]), _f(s["p90"]), _f(s["p99"]), str(s["n"])] for name, s in d["stages"].items()]
    for key, label, nd in (
        ("generated_tokens", "generated tokens / request", 0),
        ("decode_tokens_per_s", "decode tok/s", 1),
    ):
        s = d.get(key)
        if s:
            rows.append([label, _f(s["p50"], nd), _f(s["p90"], nd), _f(s["p99"], nd), str(s["n"])])
    mem = d.get("memory", {})
    rows.append(["peak host memory (MB)", _f(mem.get("peak_rss_mb"), 0), "", "", ""])
    return rows


def eval_rows(d: dict) -> list[Row]:
    if d.get("schema") != "segzero-edge.eval/1":
        raise UnknownLayout("not a segzero-edge eval summary")
    off = d.get("both_empty_dropped_official", {})
    return [
        [
            f"{d['dataset'].get('path')} ({d['dataset'].get('layout')})",
            str(d["n_samples"]),
            _f(100 * d["giou"], 2),
            _f(100 * d["ciou"], 2),
            _f(100 * off.get("giou", float("nan")), 2),
            _f(100 * d["parse_failure_rate"], 1),
        ]
    ]


def export_memory_rows(d: dict) -> list[Row]:
    if "size" not in d:  # one measured depth (the extrapolation's inputs): no budget verdict of its own
        phase = max(d["phase_peak_gb"], key=d["phase_peak_gb"].get)
        return [[f"measured, layers: {d['layers']}", _f(d["phase_peak_gb"][phase], 2), phase, "", ""]]
    return [
        [
            f"{d['size']} {d['weights']}",
            _f(d["extrapolated_peak_gb"], 2),
            str(d["peak_phase"]),
            _f(d["budget_gb"], 0),
            "yes" if d["fits"] else "no",
        ]
    ]


def world_accuracy_rows(d: dict) -> list[Row]:
    ref = d["rows"]["torch fp32 (reference)"]["giou"]
    return [
        [
            name,
            str(r["samples"]),
            _f(100 * r["giou"], 1),
            f"{100 * (r['giou'] - ref):+.1f}",
            _f(100 * r["ciou"], 1),
            _f(100 * r["parse_rate"], 1),
            _f(r["latency_ms_mean"], 0),
        ]
        for name, r in d["rows"].items()
    ]


def world_multi_rows(d: dict) -> list[Row]:
    return [
        [
            name,
            r["split"],
            str(r["samples"]),
            _f(100 * r["giou"], 1),
            _f(100 * r["ciou"], 1),
            _f(None if r["box_precision"] is None else 100 * r["box_precision"], 1),
            _f(None if r["box_recall"] is None else 100 * r["box_recall"], 1),
            _f(100 * r["parse_rate"], 1),
            _f(100 * r["faithful"], 1),
        ]
        for name, r in d["rows"].items()
    ]


def world_lens_rows(d: dict) -> list[Row]:
    return [
        [
            name,
            str(r["samples"]),
            _f(100 * r["giou"], 1),
            _f(100 * r["ciou"], 1),
            _f(100 * r["found"], 1),
            _f(r["latency_ms_mean"], 0),
        ]
        for name, r in d["rows"].items()
    ]


def lens_latency_rows(d: dict) -> list[Row]:
    rows = []
    for job in d["jobs"]:
        for name, m in job["medians"].items():
            rows.append(
                [
                    f"{job['shape']} ({job['layers']} layers), {name}",
                    _f(m["prefill"] + m["decode"], 0),
                    _f(m["mask_pass"], 0),
                    _f(m["connector"], 1),
                    _f(m["sam2_encoder"], 0),
                    _f(m["decoder"], 0),
                    _f(m["total"], 0),
                ]
            )
    return rows


def world_tracking_rows(d: dict) -> list[Row]:
    return [
        [
            r["way"],
            str(r["clips"]),
            _f(r["J"], 3),
            _f(r["F"], 3),
            _f(r["J&F"], 3),
            str(r["lost_frames"]),
            str(r["reacquired"]),
            _f(r["ms_per_frame"], 0),
        ]
        for r in d["rows"]
    ]


SECTIONS: tuple[Section, ...] = (
    Section(
        "Answer decoding: native (C++) vs Python twin",
        "Median microseconds per call of the same inputs through the pybind11 extension and the pure-Python "
        "twin, in one process, interleaved.",
        ("answer.json",),
        "python benchmarks/bench_answer.py --repeats 5",
        ("case", "Python µs", "native µs", "speed-up"),
        answer_rows,
    ),
    Section(
        "SAM2: ONNX Runtime vs official PyTorch",
        "Median ms; each side in its own worker process, alternating rounds, same thread count "
        "(random weights of the official configs: latency does not depend on the values).",
        ("sam2_cpu.json",),
        "python benchmarks/bench_sam2.py --configs sam2.1_hiera_t sam2.1_hiera_s --threads 2",
        ("stage", "PyTorch ms", "ONNX Runtime ms", "speed-up"),
        sam2_rows,
    ),
    Section(
        "Reasoner: INT4 / INT8 / fp32 on ONNX Runtime vs transformers",
        "Prefill seconds and decode tokens/s of the same Seg-Zero-sized request (Qwen2.5-VL-3B shapes, fewer "
        "layers, random weights) per weight precision; x = decode speed relative to transformers fp32.",
        ("reasoner_cpu*.json", "bench_reasoner.json"),
        "python benchmarks/bench_reasoner.py --layers 4 --threads 2",
        (
            "variant",
            "prefill s (median)",
            "decode tok/s (median)",
            "x transformers fp32",
            "MB read / token",
            "% of bandwidth bound",
        ),
        reasoner_rows,
    ),
    Section(
        "Tracking per frame: our tracker vs the official SAM2VideoPredictor",
        "Median ms of a tracked frame once the memory bank is full (frames >= 7 of a seeded clip): image "
        "encoder, memory attention, SAM heads, memory encoder, masks at the frame's size. Same weights and "
        "threads, each side in its own process, rounds interleaved; ours includes the frame's preprocessing, "
        "which the official predictor does for the whole clip before tracking. The official predictor runs "
        "each object on its own, ours all objects in one batch.",
        ("tracker_*.json",),
        "python benchmarks/bench_tracker.py --configs sam2.1_hiera_t --out benchmarks/results/tracker_cpu",
        ("config", "official ms", "ours ms", "speedup", "ours fps"),
        tracker_rows,
    ),
    Section(
        "Tracking against predict on every frame",
        "One engine with a reasoner, SAM2 and the tracker, the same seeded clip: median ms of predict() per "
        "frame (reasoning + SAM2, no cache) against Track.update per frame after one reasoning on the first "
        "frame.",
        ("track_vs_predict_*.json",),
        "python benchmarks/bench_tracker.py --configs --predict-engine .cache/demo/engine_world_int4 "
        '--text "the circle" --out benchmarks/results/track_vs_predict_world',
        ("engine, instruction", "predict ms", "predict fps", "track ms", "track fps", "track / predict"),
        track_vs_predict_rows,
    ),
    Section(
        "The ROS 2 node under a camera stream",
        "`segzero-edge serve --ros2` on the world engine, fed by a replayed camera (448 x 448 rgb8, sensor-data "
        "QoS) at each input rate over loopback Cyclone DDS; camera, node and subscriber share the machine's "
        "cores. Waiting: frames before the first answer; dropped: frames skipped because a newer one was "
        "waiting (the node never queues). Node latency: message taken to mask published; age: camera stamp to "
        "the subscriber receiving the mask.",
        ("ros_node_*.json",),
        "python benchmarks/bench_ros_node.py --rates 5 15 30 60 120 --seconds 20 "
        "--out benchmarks/results/ros_node_world",
        (
            "input fps",
            "sent",
            "received",
            "waiting",
            "dropped",
            "published",
            "node latency p50 / p90 ms",
            "age p50 / p90 ms",
            "output fps",
        ),
        ros_node_rows,
    ),
    Section(
        "Segmenter: SAM2 encoding overlapped with reasoning, feature cache",
        "End-to-end predict() with and without overlap, and with a cache hit (same frame, new question); "
        "stages measured alone (sequential) give target = max(reasoning, encoding) + decoding + pre/post; "
        "on 2 cores the overlapped encoder competes with the reasoner for the same cores.",
        ("segmenter_cpu.json",),
        "python benchmarks/bench_segmenter.py",
        (
            "engine (reasoner/SAM2 threads)",
            "sequential ms",
            "overlap ms",
            "cached 2nd question ms",
            "target ms",
            "overlap / target (goal <= 1.1)",
        ),
        segmenter_rows,
    ),
    Section(
        "End-to-end latency per stage (segzero-edge bench)",
        "p50/p90/p99 ms per stage of Segmenter.predict on one engine directory; `sam2_encode` runs on a worker "
        "thread concurrently with the reasoner, so stages do not add up to `total`. `bench_demo_tiny_cpu` is "
        "the `make demo` engine (tiny random reasoner, 990 tokens of random thinking, random SAM2 hiera-t): it "
        "shows the command works end to end; its numbers say nothing about Seg-Zero-7B.",
        ("bench_*.json",),
        "segzero-edge bench ENGINE_DIR --runs 20 --warmup 2 --out benchmarks/results/bench_<name>.json",
        ("stage", "p50 ms", "p90 ms", "p99 ms", "n"),
        bench_rows,
    ),
    Section(
        "Accuracy (segzero-edge eval)",
        "gIoU / cIoU in % as Seg-Zero's evaluation defines them (spec §7); official = both-empty samples dropped.",
        ("eval_*.json",),
        "segzero-edge eval ENGINE_DIR DATASET --out OUT && cp OUT/summary.json benchmarks/results/eval_<name>.json",
        ("dataset", "samples", "gIoU", "cIoU", "gIoU official", "parse failures %"),
        eval_rows,
    ),
    Section(
        "Accuracy of the deployment path on the small world (test split)",
        "gIoU / cIoU in % of Segmenter.predict on the 200 test scenes of the small world (docs/world.md), with "
        "the tiny reasoner and SAM2 trained here, per path: torch reference, ONNX fp32, INT8, INT4, answer "
        "constraint, thinking budget, ONNX vs torch SAM2. One changed greedy answer moves gIoU by up to 0.5 "
        "points, so deltas of a few tenths are a handful of samples.",
        ("world_accuracy.json",),
        "python -m segzero_edge.world accuracy",
        ("path", "samples", "gIoU", "Δ vs torch fp32", "cIoU", "parse rate %", "ms / sample"),
        world_accuracy_rows,
    ),
    Section(
        "Multi-object answers on the small world (VisionReasoner family)",
        "The world's multi-object reasoner (a continued fine-tune of the single-object one with VisionReasoner's "
        "prompt, answer lists and rewards) on 200 instructions that mean 2 to 6 shapes: gIoU / cIoU of the union "
        "mask, box precision / recall at IoU 0.5 after Hungarian matching, and the share of thinks that name every "
        "target and invent no shape (faithful); with the single-object split and the shipped single-object "
        "reasoner for comparison.",
        ("world_multi.json",),
        "python -m segzero_edge.world multi-accuracy",
        ("path", "split", "samples", "gIoU", "cIoU", "box precision", "box recall", "parse rate %", "faithful %"),
        world_multi_rows,
    ),
    Section(
        "LENS on the small world: hidden-state prompting vs box and points",
        "A LENS head (64 learned queries, connector, fine-tuned SAM2 prompt encoder and decoder) trained here on "
        "the frozen world reasoner's hidden states under LENS's CoT prompt (docs/world.md), against the same "
        "reasoner's box-and-points answers; torch reference, ONNX fp32 and INT4 reasoner, fp32/INT8/INT4 "
        "context graph. Mask found: share of samples with a non-empty mask.",
        ("world_lens.json",),
        "python -m segzero_edge.world lens-accuracy",
        ("path", "samples", "gIoU", "cIoU", "mask found %", "ms / sample"),
        world_lens_rows,
    ),
    Section(
        "LENS path vs Seg-Zero path: latency per stage (CPU)",
        "Median ms per stage of one random checkpoint exported both ways (INT4 reasoner, same tokens generated), "
        "sequential stages; the LENS path adds the mask pass (a second prefill), the connector and its decoder.",
        ("lens_cpu.json",),
        "python benchmarks/bench_lens.py --shape real",
        ("engine, path", "generation", "mask pass", "connector", "SAM2 encoder", "prompt decoder", "total"),
        lens_latency_rows,
    ),
    Section(
        "Tracking on the small world's test clips (J and F as DAVIS defines them)",
        "Seeded 30-frame clips of world scenes (the target leaves the frame, comes back, and is crossed by "
        "another shape), the `make demo` engine (INT4 reasoner, world SAM2 with its trained video path): the "
        "tracker from the ground-truth prompt, from one reasoning, with re-reasoning after 3 lost frames, "
        "and predict on every frame. Lost: frames with the target in view and no mask.",
        ("world_tracking.json",),
        "python -m segzero_edge.world track-accuracy",
        ("way", "clips", "J", "F", "J&F", "lost frames", "re-acquired", "ms / frame"),
        world_tracking_rows,
    ),
    Section(
        "Tracking from LENS masks on the small world's test clips",
        "The same clips and ways with the world LENS engine (the shipped LENS head, INT4 reasoner, the world "
        "SAM2's tracker with its own image encoder): tracks start from the mask LENS predicts on frame 0, as "
        "SAM2VideoPredictor.add_new_mask would.",
        ("world_tracking_lens.json",),
        "python -m segzero_edge.world track-accuracy --family lens",
        ("way", "clips", "J", "F", "J&F", "lost frames", "re-acquired", "ms / frame"),
        world_tracking_rows,
    ),
    Section(
        "Export peak host memory (reasoner)",
        "Peak RSS of `segzero-edge export reasoner` per phase, measured at 1 and 3 layers and extrapolated "
        "linearly to the full depth.",
        ("export_memory_*.json",),
        "python benchmarks/bench_export_memory.py --size 3b --layers 1 3 --weights int4",
        ("model", "extrapolated peak GB", "peak phase", "budget GB", "fits"),
        export_memory_rows,
    ),
)


# -- provenance -----------------------------------------------------------------------------------------------


def _git_date(path: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%cs", "--", path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def provenance(d: dict, path: Path, default_command: str) -> tuple[str, str, str]:
    """(machine, command, date) of one result file."""
    m = d.get("machine")
    if isinstance(m, dict):
        cores = m.get("cores") or m.get("threads")
        machine = f"{m.get('cpu', m.get('machine', '?'))}" + (f", {cores} cores" if cores else "")
        if m.get("load_average"):
            machine += f", load {' '.join(f'{x:.1f}' for x in m['load_average'])}"
    elif isinstance(m, str):
        machine = m
    elif d.get("cpu"):
        machine = f"{d['cpu']}" + (f" ({d['simd']})" if d.get("simd") else "") + f", {d.get('cores', '?')} cores"
        if d.get("load_start"):
            machine += f", load {' '.join(f'{x:.1f}' for x in d['load_start'])}"
    else:
        machine = "not recorded"
    threads = d.get("threads") if not isinstance(d.get("threads"), dict) else None
    if threads and "thread" not in machine:
        machine += f", {threads} threads"
    command = str(d.get("command") or default_command)
    depth = re.fullmatch(r"(export_memory_.+)_(\d+)l", path.stem)
    if depth and not d.get("command"):  # one depth measured for a summary file (bench_export_memory --reuse)
        command = f"one depth of {depth.group(1)}.json (its command measured or reused it)"
    date = str(
        d.get("date")
        or _git_date(path)
        or dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).date().isoformat()
    )
    return machine, command, date


# -- rendering ------------------------------------------------------------------------------------------------


def _table(columns: tuple[str, ...], rows: list[Row]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(r + [""] * (len(columns) - len(r))) + " |" for r in rows]
    return lines


def _matches(results: Path, patterns: tuple[str, ...]) -> list[Path]:
    for pattern in patterns:
        found = sorted(results.glob(pattern))
        if found:
            return found
    return []


def render_section(section: Section, results: Path) -> list[str]:
    out = [f"## {section.title}", "", section.what, ""]
    files = _matches(results, section.files)
    if not files:
        out += [
            f"**Not yet measured.** Run `{section.command}` (writes `benchmarks/results/{section.files[0]}`), "
            "then `python benchmarks/make_results.py`.",
            "",
        ]
        out += _table(section.columns, [["not yet measured"] + ["–"] * (len(section.columns) - 1)])
        return [*out, ""]
    for path in files:
        rel = path.relative_to(results.parent) if path.is_relative_to(results.parent) else path
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            out += [f"`{rel}`: **unreadable** ({type(exc).__name__}: {exc}).", ""]
            continue
        machine, command, date = provenance(d if isinstance(d, dict) else {}, path, section.command)
        out += [f"`{rel}` — machine: {machine}; date: {date}; command: `{command}`", ""]
        try:
            rows = section.rows(d)
        except (UnknownLayout, KeyError, TypeError, ValueError, AttributeError) as exc:
            keys = ", ".join(sorted(d)) if isinstance(d, dict) else type(d).__name__
            out += [
                f"**Layout not recognised** ({type(exc).__name__}: {exc}); top-level keys: {keys}. "
                f"Update `{section.rows.__name__}` in benchmarks/make_results.py.",
                "",
            ]
            continue
        out += [*_table(section.columns, rows), ""]
    return out


GPU_SECTION = """\
## What a GPU run must measure, and how

Every number above comes from a shared 2-core CPU; none of them says how fast Seg-Zero runs on a Jetson
or a server GPU. On each target (Jetson Orin / Thor, an x86 GPU server) run the same scripts with
`onnxruntime-gpu` (`pip install 'segzero-edge[ort-gpu]'`, never together with `onnxruntime`) and, for SAM2,
TensorRT (`pip install 'segzero-edge[tensorrt]'`), on a real exported engine directory (Seg-Zero-7B INT4 +
SAM2 hiera-l), and commit the JSON files under `benchmarks/results/` with a `_<device>` suffix:

1. Build the TensorRT engines once on the device: `segzero-edge build ENGINE_DIR` (writes `trt/<gpu>-<trt>/`).
2. End-to-end per stage, three configurations, same images: `segzero-edge bench ENGINE_DIR --device cuda
   --backend ort --runs 50 --warmup 5 --out benchmarks/results/bench_<device>_ort.json --plot <device>.png`,
   the same with `--backend trt`, and with `--cache` (repeated frame). The report records GPU memory
   (NVML / nvidia-smi; on Jetson the GPU shares host memory, so read the peak RSS instead), the providers
   each session really got, and the versions.
3. Reasoner precision sweep on the GPU: `python benchmarks/bench_reasoner.py --threads 2` with the CUDA
   provider (INT4 MatMulNBits vs INT8 vs fp16/fp32; decode tokens/s is memory-bound, so compare with the
   device's bandwidth as the script does on CPU).
4. SAM2 TensorRT vs ONNX Runtime CUDA vs PyTorch CUDA: `python benchmarks/bench_sam2.py` with the device
   options; the encoder dominates and is where fp16 TensorRT should pay off.
5. Overlap: on a GPU the SAM2 encoder and the reasoner contend for the same device; measure `total` with
   and without `--no-overlap` in one interleaved run (the segmenter benchmark) before assuming it helps.
6. Accuracy must not move: `segzero-edge eval ENGINE_DIR ReasonSeg_val --split test --device cuda`
   (and `--backend trt`) against the CPU numbers of the same engine directory.
7. Tracking: `segzero-edge build ENGINE_DIR` also builds the tracker's three graphs (FP32) and refuses the
   build unless a 16-frame clip tracked on TensorRT matches ONNX Runtime FP32 frame by frame (TensorRT 10.3
   on Orin computes SAM2's mask decoder wrong). Then `python benchmarks/bench_tracker.py --configs
   sam2.1_hiera_t sam2.1_hiera_l --device cuda --objects 1 --out benchmarks/results/tracker_<device>` and
   again with `--objects 3` (official `SAM2VideoPredictor` on CUDA vs ours with TensorRT). Anchors to beat:
   AGX Orin 64 GB, hiera-t TensorRT FP16 12 to 14 FPS (70 to 80 ms a frame, decoder on ONNX Runtime, a
   public tracker); A100 with torch.compile 91 FPS (SAM 2 README). Also time
   `segzero-edge track ENGINE_DIR clip.mp4 "TEXT"` against `segzero-edge bench` (predict per frame) on the
   same device: tracking fps over predict fps is the number robots care about. Try the memory attention in
   FP16 (`BuildOptions(precision={"tracker.memory_attention": "fp16-mixed"})`): the build check decides.
8. LENS: export a released checkpoint (`segzero-edge export lens --model LENS_ReasonSeg_FT --stock-sam2
   sam2_hiera_large.pt --out engines/lens`), then `segzero-edge bench engines/lens --device cuda` (its
   per-stage table has `mask_pass`, `connector` and `mask_decoder`: the mask pass is a second prefill of
   image + prompt + answer + 64 tokens, the connector 475 M parameters) with `--lens-context int8` and
   `int4` against `fp32`, `python benchmarks/bench_lens.py --shape real` on the device for the
   LENS-vs-Seg-Zero ratio on one reasoner, and `segzero-edge eval engines/lens ReasonSeg_test` against LENS's
   published 57.2 gIoU (the FT checkpoint; our reasoner input is a fixed square, LENS's keeps the aspect).
"""


def render(results: Path = RESULTS) -> str:
    head = [
        "# segzero-edge benchmark results",
        "",
        "Generated by `python benchmarks/make_results.py` from the JSON files in `benchmarks/results/`; do not "
        "edit by hand. Ratios were measured in one run with the compared variants interleaved. The shared CPU "
        "machine runs other jobs: the load average is recorded with each file where the script records it.",
        "",
    ]
    body: list[str] = []
    for section in SECTIONS:
        body += render_section(section, results)
    return "\n".join(head + body) + "\n" + GPU_SECTION


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON files")
    ap.add_argument("--out", type=Path, default=OUT, help="markdown file to write")
    ap.add_argument("--check", action="store_true", help="only check that --out is up to date (exit 1 if not)")
    args = ap.parse_args(argv)
    text = render(args.results)
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run python benchmarks/make_results.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
