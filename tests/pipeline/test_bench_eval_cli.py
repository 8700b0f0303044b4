"""``segzero-edge bench`` and ``segzero-edge eval`` run for real on the tiny engine directory (real export,
real ONNX Runtime): the JSON schema of bench, and eval's JSONL / summary against the metrics recomputed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segzero_edge.cli import main
from segzero_edge.evaluation import aggregate, evaluate, open_dataset, sample_iou
from segzero_edge.evaluation.latency import STAGES
from segzero_edge.world import ASSETS

DEMO_SCENE = ASSETS / "demo_scene.png"
REQUIRED = ("preprocess", "vision", "prefill", "decode", "sam2_encode", "sam2_decode", "postprocess", "total")


def test_bench_writes_the_json_schema_a_table_and_a_plot(full_engine_dir, tmp_path, capsys):
    out, png, md = tmp_path / "bench.json", tmp_path / "latency.png", tmp_path / "bench.md"
    code = main(
        [
            "bench",
            str(full_engine_dir),
            "--images",
            str(DEMO_SCENE),
            "--runs",
            "3",
            "--warmup",
            "1",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--max-new-tokens",
            "100",
            "--out",
            str(out),
            "--plot",
            str(png),
            "--markdown",
            str(md),
            "--no-progress",
        ]
    )
    assert code == 0
    stdout = capsys.readouterr().out
    assert "| total |" in stdout and "| decode tokens/s |" in stdout and "peak host memory" in stdout
    r = json.loads(out.read_text())
    assert r["schema"] == "segzero-edge.bench/1" and "--runs 3 --warmup 1" in r["command"]
    for key in (
        "command",
        "date",
        "machine",
        "engine",
        "device",
        "backend",
        "versions",
        "config",
        "requests",
        "stages",
        "generated_tokens",
        "decode_tokens_per_s",
        "memory",
        "runs",
        "load_s",
    ):
        assert key in r, key
    assert r["device"] == "cpu" and r["backend"] == {"reasoner": "ort", "sam2": "ort"}
    assert r["versions"]["onnxruntime"] and r["machine"]["load_average"] is not None
    assert r["providers"] == {"reasoner": ["CPUExecutionProvider"], "sam2": ["CPUExecutionProvider"]}
    assert r["requests"][0]["text"] == json.loads(DEMO_SCENE.with_suffix(".json").read_text())["text"]
    assert r["config"] == {
        "runs": 3,
        "warmup": 1,
        "cache": False,
        "overlap": True,
        "constrained": True,
        "max_new_tokens": 100,
    }
    assert set(REQUIRED) <= set(r["stages"]) and list(r["stages"]) == [s for s, _, _ in STAGES if s in r["stages"]]
    assert len(r["runs"]) == r["timed_runs"] == 3
    for name, s in r["stages"].items():
        values = [run["stages"][name] for run in r["runs"] if name in run["stages"]]
        assert s["n"] == len(values) == 3
        assert s["p50"] == pytest.approx(float(np.percentile(values, 50)))
        assert s["p99"] == pytest.approx(float(np.percentile(values, 99)))
        assert s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
    for run in r["runs"]:
        st, raw = run["stages"], run["timings_ms"]
        assert st["total"] == raw["total"] and st["total"] >= st["decode"] + st["prefill"]
        assert st["sam2_encode"] == pytest.approx(raw["sam2_preprocess"] + raw["sam2_encoder"])  # no cache: encoded
        assert 1 <= run["generated_tokens"] <= 100 and run["decode_tokens_per_s"] > 0 and run["found"]
    assert r["generated_tokens"]["n"] == 3 and r["memory"]["peak_rss_mb"] > 0
    assert r["memory"]["gpu_peak_mb"] is None  # CPU run: not sampled
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| sam2_decode |" in md.read_text()


def test_bench_with_cache_skips_the_encoder_after_the_first_request(full_engine_dir, tmp_path):
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                str(full_engine_dir),
                "--images",
                str(DEMO_SCENE),
                "--runs",
                "2",
                "--warmup",
                "1",
                "--device",
                "cpu",
                "--cache",
                "--max-new-tokens",
                "100",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    r = json.loads(out.read_text())
    assert "sam2_encode" not in r["stages"]  # every timed request hit the feature cache
    assert all("sam2_encoder" not in run["timings_ms"] for run in r["runs"]) and r["config"]["cache"]


def _index_dataset(root, n=2):
    from segzero_edge.world.scenes import generate_samples

    root.mkdir()
    records = []
    for i, (scene, query) in enumerate(generate_samples(5, n, 112)):
        Image.fromarray(scene.image).save(root / f"s{i}.png")
        Image.fromarray(scene.masks[query.target].astype(np.uint8) * 255).save(root / f"s{i}_mask.png")
        records.append({"id": f"s{i}", "image": f"s{i}.png", "mask": f"s{i}_mask.png", "text": query.text})
    (root / "index.json").write_text(json.dumps(records))
    return root


def test_evaluate_matches_predict_sample_by_sample(segmenter, tmp_path):
    ds = open_dataset(_index_dataset(tmp_path / "world"))
    report = evaluate(segmenter, ds)
    assert report.scores.n_samples == 2 and report.n_skipped == 0
    for sample, r in zip(ds, report.samples):
        image, gt = sample.load()
        res = segmenter.predict(image, sample.text)  # greedy: the same answer again
        ref = sample_iou(res.mask if res.found else None, gt)
        assert (r.intersection, r.union, r.pred_pixels) == (ref.intersection, ref.union, ref.pred_pixels)
        assert r.raw_text == res.raw_text


def test_eval_cli_writes_jsonl_and_a_consistent_summary(full_engine_dir, tmp_path, capsys):
    ds = _index_dataset(tmp_path / "world", n=3)
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                str(full_engine_dir),
                str(ds),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--max-new-tokens",
                "100",
                "--no-progress",
                "--limit",
                "2",
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [x["id"] for x in lines] == ["s0", "s1"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "segzero-edge.eval/1" and summary["dataset"]["layout"] == "index"
    ious = [x["iou"] for x in lines]
    assert summary["giou"] == pytest.approx(np.mean(ious))
    union = sum(x["union"] for x in lines)
    assert summary["ciou"] == pytest.approx(sum(x["intersection"] for x in lines) / union if union else 0.0)
    assert summary["n_samples"] == 2 and summary["parse_failure_rate"] == 0.0  # constrained: always parses
    from segzero_edge.evaluation import SampleIoU

    counts = [
        SampleIoU(x["intersection"], x["union"], x["gt_pixels"], x["pred_pixels"], x["status"] != "ok") for x in lines
    ]
    assert summary["both_empty_dropped_official"]["giou"] == pytest.approx(aggregate(counts, drop_both_empty=True).giou)
    assert "gIoU" in capsys.readouterr().out
