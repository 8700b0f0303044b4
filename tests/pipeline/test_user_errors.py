"""The three rules of docs/architecture.md, tried on a real engine directory as a hostile tester would:
a user error is one line that says what to do; no command writes where the user did not point; an impossible
result is never reported as found."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segzero_edge import Segmenter
from segzero_edge.cli import main
from segzero_edge.errors import ConfigError, InputError
from segzero_edge.world import ASSETS

DEMO_SCENE = ASSETS / "demo_scene.png"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "segzero_edge", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture
def reasonseg_folder(tmp_path) -> Path:
    """A ReasonSeg-layout folder: the demo scene and its annotation."""
    folder = tmp_path / "reasonseg"
    folder.mkdir()
    shutil.copy(DEMO_SCENE, folder / "demo_scene.png")
    shutil.copy(DEMO_SCENE.with_suffix(".json"), folder / "demo_scene.json")
    return folder


# -- no command writes where the user did not point ----------------------------------------------------


def test_predict_without_out_writes_nothing(full_engine_dir, reasonseg_folder, tmp_path, monkeypatch, capsys):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = _tree(reasonseg_folder)
    image = reasonseg_folder / "demo_scene.png"
    assert (
        main(["predict", str(full_engine_dir), str(image), "the star", "--device", "cpu", "--max-new-tokens", "60"])
        == 0
    )
    assert "reasoning :" in capsys.readouterr().out
    assert _tree(reasonseg_folder) == before and list(cwd.iterdir()) == []


def test_predict_into_a_dataset_folder_keeps_its_annotations(full_engine_dir, reasonseg_folder, capsys):
    before = _tree(reasonseg_folder)
    image = reasonseg_folder / "demo_scene.png"
    args = ["predict", str(full_engine_dir), str(image), "the star", "--device", "cpu", "--max-new-tokens", "60"]
    assert main([*args, "--out", str(reasonseg_folder)]) == 0
    after = _tree(reasonseg_folder)
    assert {k: after[k] for k in before} == before  # the annotation is untouched
    assert sorted(set(after) - set(before)) == ["demo_scene.overlay.png", "demo_scene.segzero.json"]
    record = json.loads(after["demo_scene.segzero.json"])
    assert record["text"] == "the star" and record["found"] == (record["mask_pixels"] > 0)

    from segzero_edge.evaluation import open_dataset

    dataset = open_dataset(reasonseg_folder, "auto")
    assert len(dataset) == 1  # the overlay is not taken for a sample


def test_predict_out_that_is_the_input_is_one_line(full_engine_dir, reasonseg_folder):
    image = reasonseg_folder / "demo_scene.png"
    r = _cli("predict", str(full_engine_dir), str(image), "the star", "--out", str(image))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "is the input file" in r.stderr and len(r.stderr.strip().splitlines()) == 2  # message + hint
    r = _cli("predict", str(full_engine_dir), str(image), "x", "--out", str(image / "sub"))
    assert r.returncode == 1 and "Traceback" not in r.stderr and "cannot write" in r.stderr


def test_debug_shows_the_traceback(full_engine_dir, reasonseg_folder):
    image = reasonseg_folder / "demo_scene.png"
    r = _cli("--debug", "predict", str(full_engine_dir), str(image), "x", "--out", str(image))
    assert r.returncode == 1 and "Traceback" in r.stderr and "is the input file" in r.stderr


def test_a_decompression_bomb_is_one_line(full_engine_dir, tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("L", (20000, 15000)).save(bomb)  # 300 MP > 2 x Pillow's limit: refused before decoding
    r = _cli("predict", str(full_engine_dir), str(bomb), "the star")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "too large to decode" in r.stderr


def test_inspect_into_a_closed_pipe_is_quiet(full_engine_dir):
    r = subprocess.run(
        f"{sys.executable} -m segzero_edge inspect --json {full_engine_dir} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.stdout == "{\n" and r.stderr == ""


def test_inspect_columns_never_run_together(full_engine_dir, capsys):
    assert main(["inspect", str(full_engine_dir), "--quick"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for line in lines:
        if line.startswith(("    in ", "    out ")):
            _, _, dtype, shape = line.split()
            assert dtype in ("float32", "int64", "float16", "int32", "bool", "uint8", "int8"), line
            assert shape.startswith("[")
    component = next(line for line in lines if line.startswith("component reasoner"))
    assert "component reasoner  " in component


def test_bench_and_eval_check_their_outputs_before_measuring(full_engine_dir, tmp_path, reasonseg_folder):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = _cli("bench", str(full_engine_dir), "--images", str(DEMO_SCENE), "--plot", str(blocker / "latency.png"))
    assert r.returncode == 1 and "Traceback" not in r.stderr and "cannot write" in r.stderr
    r = _cli("eval", str(full_engine_dir), str(reasonseg_folder), "--out", str(blocker))
    assert r.returncode == 1 and "Traceback" not in r.stderr and "is a file" in r.stderr


def test_eval_fails_when_nothing_was_scored(full_engine_dir, tmp_path):
    root = tmp_path / "idx"
    root.mkdir()
    (root / "index.json").write_text(json.dumps([{"id": "a", "image": "missing.png", "mask": "m.png", "text": "x"}]))
    r = _cli("eval", str(full_engine_dir), str(root), "--device", "cpu", "--no-progress")
    assert r.returncode == 1 and "no sample" in r.stderr and "gIoU" not in r.stdout
    r = _cli("eval", str(full_engine_dir), str(root), "--limit", "0")
    assert r.returncode == 2 and "at least 1" in r.stderr


def test_overwrite_never_replaces_the_working_directory(tmp_path):
    keep = tmp_path / "precious.txt"
    keep.write_text("mine")
    r = _cli("export", "tiny-reasoner", "--out", ".", "--overwrite", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "refusing to replace" in r.stderr
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    r = _cli("export", "tiny-reasoner", "--out", str(other), "--overwrite", cwd=tmp_path)
    assert r.returncode == 1 and "not a checkpoint directory" in r.stderr
    assert keep.read_text() == "mine" and (other / "cat.jpg").read_bytes() == b"meow"


# -- an impossible result is never reported as found --------------------------------------------------


@pytest.fixture(scope="module")
def seg(full_engine_dir):
    with Segmenter(full_engine_dir, device="cpu", max_new_tokens=60) as s:
        yield s


def test_a_box_outside_the_image_is_not_found(seg):
    rgb = np.asarray(Image.open(DEMO_SCENE).convert("RGB"))
    for box in [(-100, -100, -50, -50), (500, 10, 900, 50), (10, 600, 20, 700), (0, 0, 0, 0)]:
        res = seg.segment(rgb, box=box)
        assert not res.found and "outside" in res.error and not res.mask.any(), box
    res = seg.segment(rgb, box=(-50, -50, 200, 200))  # partly inside: clipped, segmented
    assert res.box == (0.0, 0.0, 200.0, 200.0) and res.found == bool(res.mask.any())


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (3, 2)])
def test_tiny_images_never_report_an_empty_mask_as_found(seg, size):
    res = seg.predict(np.full((*size, 3), 128, np.uint8), "the star")
    assert res.found == bool(res.mask.any()) and res.mask.shape == size
    assert res.found or res.error


def test_a_too_small_token_budget_says_so(seg):
    res = seg.predict(np.asarray(Image.open(DEMO_SCENE).convert("RGB")), "the star", max_new_tokens=5)
    assert not res.found and "max_new_tokens" in res.error and "raise" in res.error


# -- limits and raw exceptions ------------------------------------------------------------------------


def test_prompts_beyond_the_exported_context_are_refused(seg):
    rgb = np.zeros((32, 32, 3), np.uint8)
    profile = seg.reasoner.decoder_spec.dynamic_dims
    with pytest.raises(InputError, match=r"more than the \d+ this engine's decoder"):
        seg.predict(rgb, "star " * 5000, max_text_length=100_000)
    with pytest.raises(InputError, match="exceeds the context") as err:
        seg.predict(rgb, "the star", max_new_tokens=profile["total"][2])
    assert "max_new_tokens <=" in str(err.value)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s, im: s.predict(im, "\ud800"), "not valid Unicode"),
        (lambda s, im: s.predict(im, "   "), "empty"),
        (lambda s, im: s.segment(im, points=[(1, 2, 3)]), "pairs"),
        (lambda s, im: s.segment(im, points="ab"), "number pairs"),
        (lambda s, im: s.segment(im, points=[(1, float("nan"))]), "finite"),
        (lambda s, im: s.segment(im, box=("a", 1, 2, 3)), "4 finite numbers"),
        (lambda s, im: s.segment(im, box=(1, 2, 3)), "4 finite numbers"),
        (lambda s, im: s.segment(im, points=[(1, 2)], labels=[2]), "1 \\(foreground\\) or 0"),
    ],
)
def test_bad_arguments_are_input_errors(seg, call, match):
    with pytest.raises(InputError, match=match):
        call(seg, np.zeros((16, 16, 3), np.uint8))


def test_points_as_an_array_work(seg):
    res = seg.segment(np.asarray(Image.open(DEMO_SCENE).convert("RGB")), points=np.array([[100.0, 100.0]]))
    assert res.found == bool(res.mask.any())


@pytest.mark.parametrize(
    "options",
    [
        {"thinking_budget": 10, "constrained": False},
        {"constrained": "no"},
        {"max_new_tokens": 0},
        {"max_text_length": -1},
        {"mask_mode": "all"},
    ],
)
def test_options_are_validated(seg, options):
    with pytest.raises(ConfigError):
        seg.predict(np.zeros((8, 8, 3), np.uint8), "x", **options)


def test_negative_threads_and_a_closed_segmenter(full_engine_dir):
    with pytest.raises(InputError, match="threads"):
        Segmenter(full_engine_dir, device="cpu", threads=-3)
    s = Segmenter(full_engine_dir, device="cpu")
    s.close()
    with pytest.raises(InputError, match="closed"):
        s.predict(np.zeros((8, 8, 3), np.uint8), "x")


def test_source_paths_are_recorded_absolute(full_engine_dir, tmp_path, monkeypatch):
    from segzero_edge.manifest import load_manifest

    for src in load_manifest(full_engine_dir, verify="none").sources:
        assert os.path.isabs(src.path), src
    monkeypatch.chdir(tmp_path)
    r = _cli("inspect", str(full_engine_dir), "--quick", cwd=tmp_path)
    assert r.returncode == 0 and "missing here" not in r.stdout
