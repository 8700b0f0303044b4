"""Fixtures of the training tests: a small Seg-Zero dataset made by ``prepare-data`` for the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

#: Input size of the tiny checkpoint (``build_tiny_qwen25vl(size="tiny")``: 112 px, 16 image tokens).
TINY_INPUT_SIZE = 112


def write_index_source(root: Path, n: int = 8, seed: int = 0) -> Path:
    """``n`` random images (various non-square sizes) with rectangle / ellipse masks and an index.json."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        h, w = int(rng.integers(60, 200)), int(rng.integers(60, 200))
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        yy, xx = np.mgrid[:h, :w]
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        ry, rx = rng.uniform(0.1, 0.25) * h, rng.uniform(0.1, 0.25) * w
        if i % 2:
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        else:
            mask = (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
        Image.fromarray(image).save(root / f"img{i}.jpg")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / f"mask{i}.png")
        records.append(
            {
                "id": f"rec{i}",
                "image": f"img{i}.jpg",
                "mask": f"mask{i}.png",
                "problem": f"The {['red', 'blue', 'green', 'small'][i % 4]} object number {i}.",
            }
        )
    (root / "index.json").write_text(json.dumps(records))
    return root


@pytest.fixture(scope="session")
def tiny_seg_data(tmp_path_factory) -> Path:
    """A Seg-Zero-layout dataset (parquet) for the tiny model, written by ``prepare_dataset``. Read-only."""
    from segzero_edge.training.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("seg_data")
    src = write_index_source(root / "src", n=8)
    prepare_dataset("index", src, root / "data", input_size=TINY_INPUT_SIZE)
    return root / "data"


@pytest.fixture(scope="session")
def hf_cache(tmp_path_factory) -> str:
    """A private ``datasets`` cache (tests never touch ~/.cache)."""
    return str(tmp_path_factory.mktemp("hf_datasets_cache"))


def tiny_config(model_dir: Path, data_dir: Path, out_dir: Path, overrides: dict | None = None):
    """A CPU training config for the tiny model: small groups, short completions, seeded."""
    from segzero_edge.training.config import TrainConfig

    base = {
        "model.name_or_path": str(model_dir),
        "data.train": str(data_dir),
        "grpo.num_generations": 4,
        "grpo.prompts_per_step": 2,
        "grpo.per_device_batch_size": 4,
        "grpo.max_completion_length": 12,
        "run.output_dir": str(out_dir),
        "run.max_steps": 3,
        "run.save_steps": 100,
        "run.logging_steps": 1,
        "run.device": "cpu",
    }
    return TrainConfig().replace({**base, **(overrides or {})})
