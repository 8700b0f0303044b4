"""The world's tiny reasoner: SFT learns, and the shipped checkpoint works through ONNX export + the runtime.

The shipped checkpoint (assets/world/reasoner) records in ``world_eval.json`` its box IoU per test sample,
measured with transformers greedy decoding by ``python -m segzero_edge.training.world eval-reasoner``.
Here the same checkpoint goes through ``segzero_edge.export`` (fp32) and the torch-free runtime
``Reasoner`` with the answer constraint, and must parse every answer and reach that box IoU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "assets" / "world" / "reasoner"
#: Test scenes run through the runtime, and how far below the recorded transformers box IoU the runtime's
#: mean may fall (greedy fp32 ONNX vs transformers; the constraint may change a digit).
RUNTIME_SAMPLES = 8
BOX_IOU_MARGIN = 0.1
#: Required drop of the SFT loss (mean of the last 2 steps vs the first step) in 8 steps.
SFT_LOSS_DROP = 0.5


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    """A tiny (112 px) world reasoner with a tokenizer trained on world texts, and 16 train rows."""
    from segzero_edge.export.builders.qwen import build_tiny_qwen25vl
    from segzero_edge.training.world.dataset import read_index, write_world_dataset
    from segzero_edge.training.world.reasoner import world_corpus

    root = tmp_path_factory.mktemp("world_sft")
    written = write_world_dataset(root / "data", input_size=112, splits=("train",), counts={"train": 16})
    import pyarrow.parquet as pq

    sol = {r["id"]: r["solution"] for f in sorted((written["train_segzero"] / "data").glob("*.parquet"))
           for r in pq.read_table(f).to_pylist()}
    rows = [(r["text"], r["reasoning"], sol[r["id"]]) for r in read_index(written["train"])]
    ckpt = build_tiny_qwen25vl(root / "init", "tiny", input_size=112, tokenizer_corpus=world_corpus(rows),
                               bpe_vocab_size=600)
    return ckpt, written


def test_few_sft_steps_reduce_the_loss(tiny_world, tmp_path):
    from segzero_edge.training.world.sft import SFTConfig, run_sft

    ckpt, written = tiny_world
    cfg = SFTConfig(steps=8, batch_size=4, learning_rate=3e-3, warmup_steps=0, save_steps=4, threads=1)
    out = run_sft(ckpt, tmp_path / "sft", written["train_segzero"], written["train"], cfg, progress=False)
    losses = out["losses"]
    assert len(losses) == 8 and all(np.isfinite(losses))
    assert losses[0] - np.mean(losses[-2:]) >= SFT_LOSS_DROP, losses
    assert (out["final"] / "model.safetensors").exists()
    assert json.loads((out["final"] / "segzero_edge.json").read_text())["input_size"] == 112

    # an interrupted run (stopped after 3 steps, state saved) resumes and ends with the same weights
    part = run_sft(ckpt, tmp_path / "sft2", written["train_segzero"], written["train"], cfg, progress=False,
                   stop_after=3)
    assert part["final"] is None and part["steps"] == 3
    rest = run_sft(ckpt, tmp_path / "sft2", written["train_segzero"], written["train"], cfg, progress=False)
    assert rest["losses"] == losses
    from safetensors.numpy import load_file

    a, b = load_file(out["final"] / "model.safetensors"), load_file(rest["final"] / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(not (SHIPPED / "model.safetensors").exists(), reason="no shipped world reasoner")
def test_shipped_reasoner_through_onnx_runtime(tmp_path):
    pytest.importorskip("onnxruntime")
    from segzero_edge import decode_answer
    from segzero_edge.backends.hf_loading import load_qwen_model
    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner
    from segzero_edge.prompt import read_checkpoint_meta
    from segzero_edge.reasoner.engine import Reasoner
    from segzero_edge.reasoner.generate import GenerationOptions
    from segzero_edge.training.data import mask_box
    from segzero_edge.training.world.dataset import write_split
    from segzero_edge.training.world.evaluate import box_iou

    size = read_checkpoint_meta(SHIPPED)["input_size"]
    assert size % 28 == 0
    model = load_qwen_model(SHIPPED, "float32")
    assert sum(p.numel() for p in model.parameters()) > 0
    recorded = json.loads((SHIPPED / "world_eval.json").read_text())
    expected = {s["id"]: s["box_iou"] for s in recorded["per_sample"]}

    engine = tmp_path / "engine"
    export_reasoner(SHIPPED, engine, ReasonerExportConfig(weights="fp32", validate="quick", threads=1))
    reasoner = Reasoner(engine, device="cpu", threads=1)
    split = write_split("test", tmp_path / "data", count=RUNTIME_SAMPLES)
    from PIL import Image

    records = json.loads(split.index.read_text())
    ious, ref = [], []
    for r in records:
        image = np.asarray(Image.open(split.root / r["image"]).convert("RGB"))
        res = reasoner.generate(image, r["text"], GenerationOptions(max_new_tokens=256, constrained=True))
        ans = decode_answer(res.text, image_size=(image.shape[1], image.shape[0]), model_size=(size, size))
        assert ans.ok, res.text
        gt = mask_box(np.asarray(Image.open(split.root / r["mask"])) > 0)
        ious.append(box_iou(ans.box, gt))
        ref.append(expected[r["id"]])
    print(f"\nruntime box IoU on {len(ious)} test scenes: {np.mean(ious):.3f} "
          f"(transformers, recorded: {np.mean(ref):.3f})")
    assert np.mean(ious) >= np.mean(ref) - BOX_IOU_MARGIN
