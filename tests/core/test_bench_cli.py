"""``segzero-edge bench`` pieces that need no engine: stage mapping, percentiles, requests, missing matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from segzero_edge.cli.bench_cmd import find_requests
from segzero_edge.errors import InputError
from segzero_edge.evaluation.latency import Stats, markdown_table, stage_times


def test_stage_times_sum_and_omit():
    t = {
        "load": 1.0,
        "preprocess": 2.0,
        "vision": 3.0,
        "prefill": 4.0,
        "decode": 5.0,
        "reasoning": 14.0,
        "sam2_wait": 0.5,
        "sam2_preprocess": 6.0,
        "sam2_encoder": 7.0,
        "sam2_decoder": 8.0,
        "sam2_postprocess": 9.0,
        "total": 40.0,
    }
    st = stage_times(t)
    assert st["sam2_encode"] == 13.0 and st["sam2_decode"] == 8.0 and st["postprocess"] == 9.0
    assert st["total"] == 40.0 and "reasoning" not in st
    cached = stage_times({k: v for k, v in t.items() if k not in ("sam2_preprocess", "sam2_encoder")})
    assert "sam2_encode" not in cached  # cache hit: no encoder time, no fake zero


def test_stats_percentiles_by_hand():
    s = Stats.of([10.0, 20.0, 30.0, 40.0, 50.0, float("nan"), None])
    # linear interpolation on 5 values: p50 = 30, p90 = 46, p99 = 49.6
    assert (s.p50, s.p90, s.p99, s.mean, s.min, s.max, s.n) == (
        30.0,
        pytest.approx(46.0),
        pytest.approx(49.6),
        30.0,
        10.0,
        50.0,
        5,
    )
    assert Stats.of([]) is None
    table = markdown_table(
        {
            "stages": {"total": {"p50": 1, "p90": 2, "p99": 3, "mean": 2, "n": 3}},
            "generated_tokens": {"p50": 7, "p90": 8, "p99": 9, "mean": 8, "n": 3},
        }
    )
    assert "| total | 1.0 | 2.0 | 3.0 | 2.0 | 3 |" in table and "| generated tokens / request | 7 |" in table


def test_find_requests(tmp_path):
    from PIL import Image

    for name in ("b.png", "a.jpg"):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / name)
    (tmp_path / "a.json").write_text(json.dumps({"text": "the cup"}))
    with pytest.raises(InputError, match="no query for"):
        find_requests(tmp_path, None)
    assert [(p.name, t) for p, t in find_requests(tmp_path, ["x", "y"])] == [("a.jpg", "x"), ("b.png", "y")]
    assert find_requests(tmp_path / "a.jpg", None)[0][1] == "the cup"


def test_plot_without_matplotlib_exits_3_before_loading_anything(tmp_path):
    code = (
        "import sys\nsys.modules['matplotlib'] = None\nfrom segzero_edge.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "bench",
            str(tmp_path / "no-engine"),
            "--images",
            str(tmp_path),
            "--plot",
            str(tmp_path / "p.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 3, out.stderr
    assert "pip install 'segzero-edge[bench]'" in out.stderr
