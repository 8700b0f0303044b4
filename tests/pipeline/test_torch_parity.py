"""``backend="torch"`` (transformers' model and the official sam2 model, from the engine's source checkpoints,
behind the same pipelines) against the ONNX Runtime backends on the same tiny engine directory: same answer
text, same masks; and the torch step backend against transformers' own ``generate``."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from segzero_edge import Segmenter
from segzero_edge.errors import CheckpointError, InputError
from segzero_edge.sam2.host import mask_iou

pytest.importorskip("optimum.quanto")


@pytest.fixture(scope="module")
def torch_segmenter(full_engine_dir):
    with Segmenter(full_engine_dir, device="cpu", backend="torch", max_new_tokens=60) as seg:
        yield seg


@pytest.fixture(scope="module")
def samples():
    from segzero_edge.world.scenes import generate_samples

    out = [(sc.image, q.text) for sc, q in generate_samples(23, 4, 160)]
    out.append((np.asarray(out[0][0])[20:140, :, :].copy(), "the object closest to the top edge"))  # not square
    return out


def test_torch_backend_runs_both_stages_in_torch_behind_the_same_pipelines(segmenter, torch_segmenter):
    from segzero_edge.reference.torch_reasoner import TorchReasonerBackend
    from segzero_edge.reference.torch_sam2 import TorchSam2Backend

    assert isinstance(torch_segmenter.reasoner.backend, TorchReasonerBackend)
    assert isinstance(torch_segmenter.sam2.backend, TorchSam2Backend)
    assert type(torch_segmenter.reasoner) is type(segmenter.reasoner)  # one pipeline class per stage
    assert type(torch_segmenter.sam2) is type(segmenter.sam2)
    assert torch_segmenter.reasoner.backend.device == "cpu" and segmenter.reasoner.backend.name == "ort"


def test_torch_step_backend_equals_transformers_generate(torch_segmenter, samples):
    """The pipeline's loop over the torch step function gives transformers' own greedy tokens."""
    from segzero_edge.reasoner import GenerationOptions
    from segzero_edge.reference.torch_reasoner import TorchReasoner

    oracle = TorchReasoner(
        torch_segmenter.manifest.sources[0].path
        if torch_segmenter.manifest.sources[0].component == "reasoner"
        else next(s.path for s in torch_segmenter.manifest.sources if s.component == "reasoner"),
        model=torch_segmenter.reasoner.backend.model,
    )
    for options in (
        GenerationOptions(max_new_tokens=30, constrained=False, stop_at_answer=False),
        GenerationOptions(max_new_tokens=60),
    ):
        for rgb, text in samples[:3]:
            ours = torch_segmenter.reasoner.generate(rgb, text, options)
            ref = oracle.generate(rgb, text, options)
            assert ours.token_ids == ref.token_ids, (text, options)


def test_ort_and_torch_pipelines_agree(segmenter, torch_segmenter, samples):
    nontrivial, texts = 0, set()
    for rgb, text in samples:
        ort = segmenter.predict(rgb, text)
        ref = torch_segmenter.predict(rgb, text)
        assert ort.found and ref.found, (ort.error, ref.error)
        assert ort.raw_text == ref.raw_text, text
        assert ort.box == ref.box and ort.points == ref.points
        iou = mask_iou(ort.mask, ref.mask)
        assert iou >= 0.99, (text, iou)
        assert abs(ort.score - ref.score) < 1e-3
        nontrivial += 0.005 < ref.mask.mean() < 0.995
        texts.add(ref.raw_text)
    assert nontrivial >= 2, "too few non-trivial masks for the IoU to mean anything"
    assert len(texts) >= 2, "every sample gave the same answer: the comparison would prove little"


def test_torch_sam2_stage_matches_ort_for_all_prompt_kinds(segmenter, torch_segmenter, samples):
    rgb = samples[-1][0]
    h, w = rgb.shape[:2]
    feats_ort, feats_ref = segmenter.sam2.encode(rgb), torch_segmenter.sam2.encode(rgb)
    for name, a in feats_ort.feeds().items():
        b = feats_ref.feeds()[name]
        assert np.max(np.abs(a - b)) <= 1e-3 * max(1.0, float(np.max(np.abs(b)))), name
    prompts = [
        dict(box=(10, 5, w - 20, h - 30)),
        dict(points=[(40, 30), (90, 60)], labels=[1, 0]),
        dict(box=[(10, 5, 80, 70), (60, 20, w - 1, h - 1)], points=[[(30, 30)], [(100, 50)]]),
    ]
    for prompt in prompts:
        for mode in ("best", "single"):
            a = segmenter.sam2.decode(feats_ort, mask_mode=mode, **prompt)
            b = torch_segmenter.sam2.decode(feats_ref, mask_mode=mode, **prompt)
            assert np.array_equal(a.chosen, b.chosen), (prompt, mode)
            np.testing.assert_allclose(a.iou_scores, b.iou_scores, atol=1e-3)
            for ma, mb in zip(a.masks, b.masks):
                assert mask_iou(ma, mb) >= 0.99, (prompt, mode)


def test_torch_backend_found_false_and_bad_inputs(torch_segmenter, samples):
    rgb, text = samples[0]
    res = torch_segmenter.predict(rgb, text, constrained=False, max_new_tokens=20)
    assert res.found is False and not res.mask.any() and res.error
    with pytest.raises(InputError, match="empty"):
        torch_segmenter.predict(rgb, " ")


def test_checkpoint_resolution_errors(full_engine_dir, tmp_path):
    with pytest.raises(InputError, match="backend='torch'"):
        Segmenter(full_engine_dir, backend="ort", sam2_checkpoint=tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        Segmenter(full_engine_dir, backend="torch", sam2_checkpoint=tmp_path / "missing.pt")
    from segzero_edge.manifest import load_manifest

    source = next(s for s in load_manifest(full_engine_dir).sources if s.component == "sam2")
    other = tmp_path / "other.pt"
    shutil.copyfile(source.path, other)
    with open(other, "ab") as f:  # same weights, one extra byte: another file as far as the hash goes
        f.write(b"\0")
    with pytest.raises(CheckpointError, match="not the one this engine was exported from"):
        Segmenter(full_engine_dir, backend="torch", sam2_checkpoint=other)
    with pytest.raises(InputError, match="torch weights"):
        Segmenter(full_engine_dir, backend="torch", torch_weights="int3")


def test_missing_source_checkpoint_names_the_argument(full_engine_dir, tmp_path):
    import json

    copy = tmp_path / "engine"
    shutil.copytree(full_engine_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    for s in manifest["sources"]:
        s["path"] = str(tmp_path / "gone" / s["component"])
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="not on this machine") as exc:
        Segmenter(copy, backend="torch", device="cpu")
    assert "sam2_checkpoint" in exc.value.hint
