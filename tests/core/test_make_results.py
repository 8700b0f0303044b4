"""benchmarks/make_results.py: table-driven RESULTS.md, tolerant of missing, foreign and broken JSON files."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("make_results", ROOT / "benchmarks" / "make_results.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_results", mod)  # dataclasses look their module up there
    spec.loader.exec_module(sys.modules["make_results"])
    return sys.modules["make_results"]


def test_every_section_says_not_yet_measured_with_its_command(tmp_path):
    mr = _module()
    text = mr.render(tmp_path)
    for section in mr.SECTIONS:
        assert f"## {section.title}" in text
        assert f"Run `{section.command}`" in text
    assert text.count("| not yet measured |") == len(mr.SECTIONS)
    assert "## What a GPU run must measure, and how" in text and "segzero-edge build" in text


def test_rows_come_from_the_json_and_foreign_layouts_do_not_crash(tmp_path):
    mr = _module()
    shutil.copy(ROOT / "benchmarks" / "results" / "answer.json", tmp_path / "answer.json")
    (tmp_path / "reasoner_cpu.json").write_text(json.dumps({"machine": {"cpu": "X", "cores": 2}, "whatever": 1}))
    (tmp_path / "segmenter_cpu.json").write_text("{not json")
    bench = {
        "schema": "segzero-edge.bench/1",
        "command": "segzero-edge bench E",
        "date": "2026-01-02T00:00:00+00:00",
        "machine": {"cpu": "Some CPU", "cores": 4, "load_average": [1.0, 2.0, 3.0]},
        "stages": {"total": {"p50": 12.0, "p90": 13.0, "p99": 14.5, "n": 5}},
        "generated_tokens": {"p50": 40, "p90": 41, "p99": 42, "n": 5},
        "memory": {"peak_rss_mb": 321.0},
    }
    (tmp_path / "bench_demo.json").write_text(json.dumps(bench))
    text = mr.render(tmp_path)
    answer = json.loads((tmp_path / "answer.json").read_text())
    ratio = answer["decode"]["typical/raw"]["ratio_median"]
    assert "| decode_answer, typical/raw | " in text and f"{ratio:.1f}x |" in text
    assert "command: `python benchmarks/bench_answer.py --repeats 5`" in text
    assert "**Layout not recognised**" in text and "top-level keys: machine, whatever" in text
    assert "**unreadable**" in text
    assert "| total | 12.0 | 13.0 | 14.5 | 5 |" in text and "| peak host memory (MB) | 321 |" in text
    assert (
        "machine: Some CPU, 4 cores, load 1.0 2.0 3.0; date: 2026-01-02T00:00:00+00:00; "
        "command: `segzero-edge bench E`" in text
    )


def test_check_mode(tmp_path):
    mr = _module()
    out = tmp_path / "RESULTS.md"
    assert mr.main(["--results", str(tmp_path), "--out", str(out), "--check"]) == 1
    assert mr.main(["--results", str(tmp_path), "--out", str(out)]) == 0
    assert mr.main(["--results", str(tmp_path), "--out", str(out), "--check"]) == 0
