"""The world's dataset writer: fixed layout, readable by prepare_dataset / iter_index, byte-deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("datasets")

COUNTS = {"train": 6, "val": 2, "test": 3}


def _write(root: Path) -> dict:
    from segzero_edge.world.dataset import write_world_dataset

    return write_world_dataset(root, input_size=112, counts=COUNTS)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def two_writes(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("world_a"), tmp_path_factory.mktemp("world_b")
    return _write(a), a, _write(b), b


def test_same_seed_same_bytes(two_writes):
    _, a, _, b = two_writes
    fa, fb = _files(a), _files(b)
    assert set(fa) == set(fb)
    assert any(k.endswith(".parquet") for k in fa)
    different = [k for k in fa if fa[k] != fb[k]]
    assert not different, different


def test_index_layout_and_prepare(two_writes):
    from PIL import Image

    from segzero_edge.training.prepare import iter_index
    from segzero_edge.training.rewards import parse_solution
    from segzero_edge.world import SCENE_SIZE, SPLITS
    from segzero_edge.world.scenes import generate_samples

    written, root, _, _ = two_writes
    for name, n in COUNTS.items():
        records = json.loads((root / name / "index.json").read_text())
        assert len(records) == n
        assert all({"id", "image", "mask", "text", "kind"} <= set(r) for r in records)
        items = list(iter_index(root / name))
        assert [i[0] for i in items] == [r["id"] for r in records] and all(i[3] for i in items)
        samples = generate_samples(SPLITS[name].seed, n, SCENE_SIZE)
        for r, (scene, query) in zip(records, samples):
            assert r["text"] == query.text and r["kind"] == query.kind
            img = np.asarray(Image.open(root / name / r["image"]))
            assert img.shape == (SCENE_SIZE, SCENE_SIZE, 3) and np.array_equal(img, scene.image)
            mask = np.asarray(Image.open(root / name / r["mask"])) > 0
            assert np.array_equal(mask, scene.masks[query.target]) and mask.any()
            labels = np.asarray(Image.open(root / name / r["labels"]))
            assert all(np.array_equal(labels == k + 1, m) for k, m in enumerate(scene.masks))
            assert r["objects"] == [{"color": o.color, "shape": o.shape} for o in scene.objects]
    ids = {name: [r["id"] for r in json.loads((root / name / "index.json").read_text())] for name in COUNTS}
    assert ids["test"][0] == "test_00000" and not set(ids["test"]) & set(ids["train"])
    import pyarrow.parquet as pq

    files = sorted((written["train_segzero"] / "data").glob("*.parquet"))
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    assert len(rows) == COUNTS["train"]
    for row in rows:
        box, points = parse_solution(row["solution"])
        assert box is not None and points is not None
        assert all(0 <= v < 112 for v in box) and box[0] <= box[2] and box[1] <= box[3]
        assert row["img_width"] == row["img_height"] == SCENE_SIZE
