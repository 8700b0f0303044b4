"""TensorRT path: everything that needs no GPU is tested here (profiles, folder names, plans, manifest
records); the builds themselves run only where TensorRT and a CUDA GPU exist (skipped otherwise)."""

from __future__ import annotations

import pytest

from segzero_edge.errors import BackendUnavailableError, InputError, ManifestError
from segzero_edge.manifest import (
    GraphSpec,
    TensorSpec,
    file_entry,
    load_manifest,
    new_manifest,
    save_manifest,
)
from segzero_edge.reasoner import contract as reasoner_contract
from segzero_edge.sam2 import contract as sam2_contract
from segzero_edge.sam2.contract import DECODER, ENCODER, Sam2Settings, decoder_spec, encoder_spec
from segzero_edge.trt.build import BuildOptions, build_record, install_build, plan_build
from segzero_edge.trt.profiles import build_key, find_build, profile_shapes

SHAPES = {
    sam2_contract.IMAGE_EMBED: (1, 256, 64, 64),
    sam2_contract.HIGH_RES_FEATS_0: (1, 32, 256, 256),
    sam2_contract.HIGH_RES_FEATS_1: (1, 64, 128, 128),
}


def _small_engine_dir(path):
    """An engine directory whose sam2 graphs are placeholders (enough for planning and recording)."""
    (path / "sam2").mkdir(parents=True)
    graphs = {ENCODER: encoder_spec(1024, SHAPES), DECODER: decoder_spec(SHAPES, 256)}
    for spec in graphs.values():
        (path / spec.file).write_bytes(b"onnx placeholder " + spec.file.encode())
    files = [file_entry(path, spec.file) for spec in graphs.values()]
    settings = Sam2Settings(
        config="configs/sam2.1/sam2.1_hiera_t.yaml",
        image_size=1024,
        low_res_size=256,
        pixel_mean=(0.485, 0.456, 0.406),
        pixel_std=(0.229, 0.224, 0.225),
    )
    manifest = new_manifest().replace_component("sam2", settings=settings.to_dict(), graphs=graphs, files=files)
    save_manifest(manifest, path)
    return path


def test_profiles_from_manifest_dynamic_dims():
    spec = decoder_spec(SHAPES, 256, objects=(1, 1, 16), points=(1, 4, 16))
    prof = profile_shapes(spec)
    assert prof == {
        sam2_contract.POINT_COORDS: ((1, 1, 2), (1, 4, 2), (16, 16, 2)),
        sam2_contract.POINT_LABELS: ((1, 1), (1, 4), (16, 16)),
        sam2_contract.MASK_INPUT: ((1, 1, 256, 256), (1, 1, 256, 256), (16, 1, 256, 256)),
        sam2_contract.HAS_MASK_INPUT: ((1,), (1,), (16,)),
    }
    assert profile_shapes(encoder_spec(1024, SHAPES)) == {}  # static graph: no profile
    no_profile = GraphSpec(file="g.onnx", inputs=(TensorSpec("x", "float32", ("batch", 3)),), outputs=())
    with pytest.raises(ManifestError, match="'batch' without a TensorRT profile"):
        profile_shapes(no_profile)


@pytest.mark.parametrize(
    ("gpu", "version", "key"),
    [
        ("NVIDIA Jetson AGX Orin", "10.3.0", "nvidia-jetson-agx-orin-10.3.0"),
        ("NVIDIA GeForce RTX 4090", "10.7.0.post1", "nvidia-geforce-rtx-4090-10.7.0.post1"),
        ("Orin (nvgpu)", "10.3.0", "orin-nvgpu-10.3.0"),
        ("NVIDIA H100 80GB HBM3", "10.13.3.9", "nvidia-h100-80gb-hbm3-10.13.3.9"),
    ],
)
def test_cache_folder_names(gpu, version, key):
    assert build_key(gpu, version) == key


def test_plan_policies_and_overrides(tmp_path):
    manifest = load_manifest(_small_engine_dir(tmp_path / "e"))
    plans = {p.graph: p for p in plan_build(manifest)}
    assert plans[ENCODER].precision == "fp16-mixed" and plans[DECODER].precision == "fp32"
    assert plans[ENCODER].profiles == {} and plans[DECODER].profiles[sam2_contract.POINT_COORDS][2] == (16, 16, 2)
    assert plans[DECODER].engine_name == "sam2.mask_decoder.engine"
    fp32 = plan_build(manifest, BuildOptions(precision={ENCODER: "fp32"}, graphs=(ENCODER,)))
    assert [(p.graph, p.precision) for p in fp32] == [(ENCODER, "fp32")]
    with pytest.raises(InputError, match=r"reasoner\.decoder"):
        plan_build(manifest, BuildOptions(graphs=(reasoner_contract.DECODER,)))


def test_install_records_build_atomically_and_replaces_older(tmp_path):
    engine_dir = _small_engine_dir(tmp_path / "e")
    manifest = load_manifest(engine_dir)
    plans = plan_build(manifest)
    key = build_key("NVIDIA Jetson AGX Orin", "10.3.0")
    meta = dict(key=key, gpu_name="NVIDIA Jetson AGX Orin", compute_capability="8.7", tensorrt_version="10.3.0")
    for round_ in (1, 2):
        staged = engine_dir / "trt" / f".{key}.partial-test"
        staged.mkdir(parents=True)
        for p in plans:
            (staged / p.engine_name).write_bytes(f"engine {p.graph} round {round_}".encode())
        build = build_record(
            engine_dir, staged.relative_to(engine_dir).as_posix(), plans, settings={"round": round_}, **meta
        )
        assert build.engines[ENCODER].startswith("trt/.")  # staged paths, as the check sees them
        final = install_build(engine_dir, staged, build)
        assert final.engines == {
            ENCODER: f"trt/{key}/sam2.image_encoder.engine",
            DECODER: f"trt/{key}/sam2.mask_decoder.engine",
        }
    saved = load_manifest(engine_dir)  # verifies the engine files' hashes too? (trt files: by the backend)
    (found,) = saved.trt_builds
    assert found == find_build(saved, "NVIDIA Jetson AGX Orin", "10.3.0") and found.settings["round"] == 2
    assert sorted(p.name for p in (engine_dir / "trt").iterdir()) == [key]  # old and staged folders gone
    assert (engine_dir / found.engines[DECODER]).read_bytes() == b"engine sam2.mask_decoder round 2"
    assert find_build(saved, "NVIDIA GeForce RTX 4090", "10.3.0") is None


def test_re_export_drops_engines_built_from_old_graphs(tmp_path):
    pytest.importorskip("torch", reason="the engine directory writer lives in the export package")
    from segzero_edge.export.engine_dir import EngineDirWriter

    engine_dir = _small_engine_dir(tmp_path / "e")
    (engine_dir / "trt" / "k").mkdir(parents=True)
    (engine_dir / "trt" / "k" / "x.engine").write_bytes(b"old")
    manifest = load_manifest(engine_dir)
    with EngineDirWriter(engine_dir, "sam2") as w:
        for name, spec in manifest.graphs.items():
            w.path(spec.file).write_bytes(b"new " + name.encode())
        w.commit(settings={}, graphs=dict(manifest.graphs))
    assert load_manifest(engine_dir).trt_builds == () and not (engine_dir / "trt").exists()


def test_trt_backend_unavailable_is_explained(tmp_path):
    pytest.importorskip("onnxruntime", reason="the ORT fallback needs onnxruntime")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here; this test covers machines without it")
    except ImportError:
        pass
    from segzero_edge.sam2 import Sam2Pipeline

    engine_dir = _small_engine_dir(tmp_path / "e")
    with pytest.raises(BackendUnavailableError, match=r"segzero-edge\[tensorrt\]"):
        Sam2Pipeline(engine_dir, backend="trt")


def test_plan_builds_the_tracker_graphs_in_fp32_with_their_object_profile(tmp_path):
    from segzero_edge.tracker import contract as tracker_contract
    from segzero_edge.tracker.contract import TrackerSettings, graph_specs

    path = _small_engine_dir(tmp_path / "e")
    settings = TrackerSettings(
        config="configs/sam2.1/sam2.1_hiera_t.yaml",
        sam2_sha256="0" * 64,
        image_size=1024,
        low_res_size=256,
        hidden_dim=256,
        mem_dim=64,
        feat_size=64,
    )
    graphs = graph_specs(settings, max_objects=8)
    (path / "tracker").mkdir()
    for spec in graphs.values():
        (path / spec.file).write_bytes(b"onnx placeholder " + spec.file.encode())
    files = [file_entry(path, spec.file) for spec in graphs.values()]
    m = load_manifest(path).replace_component("tracker", settings=settings.to_dict(), graphs=graphs, files=files)
    save_manifest(m, path)
    plans = {p.graph: p for p in plan_build(load_manifest(path))}
    # tracker.mask_prompt runs once per mask-started track: ONNX Runtime runs it, no engine is built
    per_frame = set(graphs) - {tracker_contract.MASK_PROMPT}
    assert set(plans) == {ENCODER, DECODER, *per_frame}
    for name in per_frame:
        assert plans[name].precision == "fp32"
    attention = plans[tracker_contract.MEMORY_ATTENTION].profiles
    assert attention[tracker_contract.MEMORY][0] == (1, 7, 64, 64, 64)
    assert attention[tracker_contract.MEMORY][2] == (8, 7, 64, 64, 64)
    assert plans[tracker_contract.MASK_DECODER].profiles[tracker_contract.POINT_COORDS][2] == (8, 16, 2)
