"""Segmenter end to end on a tiny random engine directory (real export, real ONNX Runtime)."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
from PIL import Image

from segzero_edge import Segmentation, Segmenter, SegmenterOptions
from segzero_edge.errors import ConfigError, EngineFileError, InputError, ManifestError


def test_predict_returns_a_mask_for_a_constrained_answer(segmenter, scene):
    rgb, text = scene
    res = segmenter.predict(rgb, text)
    assert isinstance(res, Segmentation)
    assert res.found, res.error  # the answer constraint + thinking budget always give a decodable answer
    assert res.mask.shape == rgb.shape[:2] and res.mask.dtype == bool
    x1, y1, x2, y2 = res.box
    assert 0 <= x1 <= x2 <= rgb.shape[1] and 0 <= y1 <= y2 <= rgb.shape[0]
    assert len(res.points) == 2 and 0.0 <= res.score <= 1.0
    assert "</answer>" in res.raw_text and res.answer.ok
    for stage in ("preprocess", "vision", "prefill", "decode", "sam2_decoder", "total"):
        assert res.timings_ms[stage] >= 0.0


def test_same_result_for_path_pil_array_and_bgr(segmenter, scene, tmp_path):
    rgb, text = scene
    path = tmp_path / "scene.png"
    Image.fromarray(rgb).save(path)
    ref = segmenter.predict(rgb, text)
    for image, kw in ((path, {}), (Image.fromarray(rgb), {}), (rgb[:, :, ::-1].copy(), {"color": "bgr"})):
        res = segmenter.predict(image, text, **kw)
        assert res.raw_text == ref.raw_text and np.array_equal(res.mask, ref.mask)


def test_undecodable_answer_is_not_found_not_an_exception(segmenter, scene):
    rgb, text = scene
    res = segmenter.predict(rgb, text, constrained=False, max_new_tokens=20)
    assert res.found is False
    assert res.error and "answer" in res.error
    assert not res.mask.any() and res.mask.shape == rgb.shape[:2]
    assert res.box is None and res.score == 0.0


@pytest.mark.parametrize(
    ("image", "text", "error", "match"),
    [
        (np.zeros((8, 8, 3), np.uint8), "", InputError, "empty"),
        (np.zeros((8, 8, 3), np.uint8), "   ", InputError, "empty"),
        (np.zeros((8, 8, 3), np.uint8), 42, InputError, "must be a str"),
        (np.zeros((8, 8, 3), np.uint8), "x" * 5000, InputError, "max_text_length"),
        (np.zeros((0, 8, 3), np.uint8), "the cup", InputError, "zero size"),
        (np.zeros((8, 8, 3), np.float32), "the cup", InputError, "uint8"),
        (np.zeros((8, 8, 2), np.uint8), "the cup", InputError, "HxW"),
    ],
)
def test_bad_arguments_raise_clear_errors(segmenter, image, text, error, match):
    with pytest.raises(error, match=match) as exc:
        segmenter.predict(image, text)
    assert exc.value.hint or "->" not in str(exc.value)


def test_bad_options(segmenter, scene):
    with pytest.raises(ConfigError, match="unknown option"):
        segmenter.predict(scene[0], scene[1], max_tokens=3)
    with pytest.raises(ConfigError, match="mask_mode"):
        SegmenterOptions(mask_mode="biggest")
    with pytest.raises(ConfigError, match="temperature"):
        segmenter.predict(scene[0], scene[1], temperature=0.0)


def test_missing_and_tampered_engine_directories(full_engine_dir, tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        Segmenter(tmp_path / "nope")
    copy = tmp_path / "engine"
    shutil.copytree(full_engine_dir, copy)
    target = copy / "sam2" / "mask_decoder.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x55
    target.write_bytes(bytes(data))
    with pytest.raises(EngineFileError, match=r"sam2/mask_decoder\.onnx"):
        Segmenter(copy)
    with pytest.raises(InputError, match="unknown backend"):
        Segmenter(full_engine_dir, backend="tensorflow")


def _count_calls(obj, name):
    calls = []
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    setattr(obj, name, wrapper)
    return calls


def test_cache_avoids_reencoding(full_engine_dir, scene):
    rgb, text = scene
    with Segmenter(full_engine_dir, device="cpu", max_new_tokens=40, cache_size=2) as seg:
        encodes = _count_calls(seg.sam2.backend, "encode")
        visions = _count_calls(seg.reasoner.backend, "vision")
        first = seg.predict(rgb, text)
        second = seg.predict(rgb, "the largest shape")
        third = seg.segment(rgb, box=(10, 10, 90, 90))
        assert len(encodes) == 1 and len(visions) == 1
        assert "sam2_encoder" in first.timings_ms and "sam2_encoder" not in second.timings_ms
        assert third.found and third.mask.shape == rgb.shape[:2]
        seg.predict(255 - rgb, text)  # another frame: both stages run again
        assert len(encodes) == 2 and len(visions) == 2


def test_concurrent_predicts_equal_sequential_ones(segmenter, scene):
    """4 threads released together on a frame nobody has seen: one SAM2 encoding (the cache shares the
    pending one), and every result equals the one-at-a-time result for the same request. Each request
    samples with its own seed (the random tiny model answers greedily almost the same whatever the
    question), so results mixed up between threads would show."""
    rgb = np.ascontiguousarray(scene[0][::-1])  # a new frame for this session's caches
    texts = ["the largest shape", "the red circle", "the shape left of the star", "the blue shape"]
    sampling = {"do_sample": True, "temperature": 1.5}
    results: dict[int, Segmentation] = {}
    errors = []
    barrier = threading.Barrier(4)
    backend = segmenter.sam2.backend
    encodes = _count_calls(backend, "encode")

    def run(i):
        try:
            barrier.wait(timeout=60)
            results[i] = segmenter.predict(rgb, texts[i], seed=i, **sampling)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        del backend.encode  # drop the instance-level wrapper
    assert not errors, errors
    assert len(encodes) == 1, f"{len(encodes)} encodings of one frame by 4 concurrent requests"
    sequential = [segmenter.predict(rgb, t, seed=i, **sampling) for i, t in enumerate(texts)]
    assert len({r.raw_text for r in sequential}) == 4, "the requests must give different answers to compare"
    for i, ref in enumerate(sequential):
        assert results[i].raw_text == ref.raw_text
        assert results[i].box == ref.box
        assert np.array_equal(results[i].mask, ref.mask)


def test_segment_clips_and_reorders_boxes(segmenter, scene):
    rgb, _ = scene
    res = segmenter.segment(rgb, box=(500, 400, -20, 10), points=[(40, 40)])
    assert res.box == (0.0, 10.0, float(rgb.shape[1]), float(rgb.shape[0]))
    with pytest.raises(InputError, match="box must be 4 finite"):
        segmenter.segment(rgb, box=(0, 0, float("nan"), 3))
    with pytest.raises(InputError, match="needs a box"):
        segmenter.segment(rgb)


def test_reason_returns_the_decoded_answer(segmenter, scene):
    rgb, text = scene
    answer = segmenter.reason(rgb, text)
    assert answer.ok and len(answer.points) == 2
    assert answer.box == segmenter.predict(rgb, text).box


def test_options_are_defined_once_and_composed():
    from segzero_edge import GenerationOptions

    opts = SegmenterOptions()
    assert opts.generation == GenerationOptions() and opts.generation.constrained is True
    tuned = opts.updated(max_new_tokens=300, mask_mode="single", thinking_budget=12)
    assert tuned.generation.max_new_tokens == 300 and tuned.generation.thinking_budget == 12
    assert tuned.mask_mode == "single" and opts.generation.max_new_tokens == 1024  # a copy
    assert set(SegmenterOptions.names()) >= {"max_new_tokens", "constrained", "mask_mode", "overlap"}
    assert GenerationOptions(max_new_tokens=300).effective_thinking_budget == 220
    assert GenerationOptions(constrained=False).effective_thinking_budget is None
    with pytest.raises(ConfigError, match="needs constrained=True"):
        opts.updated(constrained=False, thinking_budget=5)  # not silently dropped
    with pytest.raises(ConfigError, match="True or False"):
        opts.updated(constrained="no")


def test_device_strings(full_engine_dir):
    import onnxruntime as ort

    from segzero_edge.errors import BackendUnavailableError

    for bad in ("tpu", "cuda:x", "cpu:0", "cuda:-1"):
        with pytest.raises(InputError, match="unknown device"):
            Segmenter(full_engine_dir, device=bad)
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        # accepted as a device string, refused because this onnxruntime has no CUDA provider
        with pytest.raises(BackendUnavailableError, match=r"cuda:0.*CUDAExecutionProvider") as exc:
            Segmenter(full_engine_dir, device="cuda:0")
        assert "onnxruntime-gpu" in exc.value.hint
    with Segmenter(full_engine_dir, device="auto", verify="size") as seg:  # auto: CPU here, with no error
        assert (
            seg.reasoner.backend.device in ("cpu", "cuda:0") and seg.sam2.backend.device == seg.reasoner.backend.device
        )


def _without_reasoner(engine_dir, dst):
    """A copy of ``engine_dir`` holding only its SAM2 component."""
    import json

    shutil.copytree(engine_dir, dst)
    shutil.rmtree(dst / "reasoner")
    m = json.loads((dst / "manifest.json").read_text())
    m["components"].pop("reasoner")
    m["validation"].pop("reasoner", None)
    m["graphs"] = {k: v for k, v in m["graphs"].items() if not k.startswith("reasoner.")}
    m["files"] = [f for f in m["files"] if not f["path"].startswith("reasoner/")]
    m["sources"] = [s for s in m["sources"] if s["component"] != "reasoner"]
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def test_a_sam2_only_engine_segments_and_says_what_predict_needs(full_engine_dir, segmenter, scene, tmp_path):
    rgb, text = scene
    engine = _without_reasoner(full_engine_dir, tmp_path / "sam2_only")
    with Segmenter(engine, device="cpu") as seg:
        assert seg.reasoner is None
        res = seg.segment(rgb, box=(10, 10, 90, 90), points=np.array([[40.0, 40.0]]))  # an (N, 2) array works
        ref = segmenter.segment(rgb, box=(10, 10, 90, 90), points=[(40, 40)])
        assert res.found and np.array_equal(res.mask, ref.mask)
        with pytest.raises(ManifestError, match=r"predict\(\) needs the reasoner") as exc:
            seg.predict(rgb, text)
        assert "segzero-edge export reasoner" in exc.value.hint
        with pytest.raises(ManifestError, match=r"reason\(\) needs the reasoner"):
            seg.reason(rgb, text)
    with pytest.raises(InputError, match=r"points must be \(x, y\) pairs"):
        segmenter.segment(rgb, points=[(1, 2, 3)])


def test_closed_segmenter_says_so(full_engine_dir, scene):
    seg = Segmenter(full_engine_dir, device="cpu", verify="size")
    seg.close()
    with pytest.raises(InputError, match="closed Segmenter"):
        seg.predict(*scene)
