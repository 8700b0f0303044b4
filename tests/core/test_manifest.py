"""The engine-directory manifest: validation, atomic save, and refusal of tampered directories."""

import json

import pytest

from segzero_edge import manifest as mf
from segzero_edge.errors import EngineFileError, EngineIncompatibleError, ManifestError
from segzero_edge.reasoner import contract as reasoner_contract
from segzero_edge.sam2 import contract as sam2_contract

from .conftest import make_toy_engine_dir as _engine_dir


def test_roundtrip(tmp_path):
    d, m = _engine_dir(tmp_path)
    loaded = mf.load_manifest(d)
    assert loaded.to_dict() == m.to_dict()
    assert loaded.graph(sam2_contract.DECODER).dynamic_dims["num_objects"] == (1, 1, 16)
    assert loaded.component("sam2")["image_size"] == 1024
    assert loaded.validation["sam2"]["mask_iou_min"] == 0.9995
    assert not list(d.glob(".manifest.*")), "the temporary file of the atomic save must be gone"


def test_tampered_file_is_refused_naming_it(tmp_path):
    d, _ = _engine_dir(tmp_path)
    p = d / "sam2" / "mask_decoder.onnx"
    data = bytearray(p.read_bytes())
    data[5] ^= 0xFF  # same size, different content
    p.write_bytes(bytes(data))
    with pytest.raises(EngineFileError, match=r"sam2/mask_decoder\.onnx"):
        mf.load_manifest(d)
    mf.load_manifest(d, verify="size")  # size-only check cannot see it, by design


def test_missing_and_truncated_files_are_refused(tmp_path):
    d, _ = _engine_dir(tmp_path)
    (d / "sam2" / "image_encoder.onnx").write_bytes(b"short")
    with pytest.raises(EngineFileError, match=r"sam2/image_encoder.onnx has 5 bytes"):
        mf.load_manifest(d, verify="size")
    (d / "sam2" / "image_encoder.onnx").unlink()
    with pytest.raises(EngineFileError, match=r"sam2/image_encoder.onnx is missing"):
        mf.load_manifest(d)


def test_missing_manifest_and_directory(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        mf.load_manifest(tmp_path / "nope")
    with pytest.raises(ManifestError, match=r"has no manifest\.json"):
        mf.load_manifest(tmp_path)


def test_other_format_version_and_prompt_version(tmp_path):
    d, _ = _engine_dir(tmp_path)
    data = json.loads((d / "manifest.json").read_text())
    data["format_version"] = 99
    (d / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="upgrade segzero-edge"):
        mf.load_manifest(d)
    data["format_version"] = mf.FORMAT_VERSION
    data["prompt_version"] = "some-other-prompt"
    (d / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(EngineIncompatibleError, match="some-other-prompt"):
        mf.load_manifest(d)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(surprise=1), "unknown top-level"),
        (lambda d: d["files"][0].update(path="../etc/passwd"), "must be relative"),
        (lambda d: d["files"][0].update(sha256="xyz"), "sha256"),
        (lambda d: d["graphs"][sam2_contract.ENCODER]["inputs"][0].update(dtype="float99"), "unknown dtype"),
        (lambda d: d["graphs"][sam2_contract.DECODER]["dynamic_dims"].update(num_objects=[4, 2, 1]), "min <= opt"),
        (lambda d: d["files"].pop(0), "not in the file list"),
        (lambda d: d.pop("prompt_version"), "missing field"),
    ],
)
def test_invalid_manifests_are_refused(tmp_path, mutate, message):
    d, _ = _engine_dir(tmp_path)
    data = json.loads((d / "manifest.json").read_text())
    mutate(data)
    (d / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=message):
        mf.load_manifest(d)


def test_unreadable_json(tmp_path):
    d, _ = _engine_dir(tmp_path)
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="cannot read"):
        mf.load_manifest(d)


def test_replace_component_keeps_the_other_and_drops_trt(tmp_path):
    d, m = _engine_dir(tmp_path)
    (d / "reasoner").mkdir()
    (d / "reasoner" / "decoder.onnx").write_bytes(b"dec")
    trt = mf.TrtBuild("h200-10.9", "NVIDIA H200", "9.0", "10.9", {}, (), mf.utc_now())
    m = m.with_trt_build(trt)
    assert len(m.trt_builds) == 1
    dec = mf.GraphSpec("reasoner/decoder.onnx", (), (), precision="int4", quantization={"bits": 4, "block_size": 32})
    m2 = m.replace_component(
        "reasoner",
        settings={"input_size": 840},
        graphs={reasoner_contract.DECODER: dec},
        files=[mf.file_entry(d, "reasoner/decoder.onnx")],
    )
    assert set(m2.components) == {"sam2", "reasoner"}
    assert set(m2.graphs) == {sam2_contract.ENCODER, sam2_contract.DECODER, reasoner_contract.DECODER}
    assert m2.trt_builds == ()
    with pytest.raises(ManifestError, match="must live under reasoner/"):
        m.replace_component("reasoner", settings={}, graphs={}, files=[mf.file_entry(d, "sam2/mask_decoder.onnx")])


def test_missing_graph_and_component_messages(tmp_path):
    _, m = _engine_dir(tmp_path)
    with pytest.raises(ManifestError, match=r"no graph 'reasoner\.decoder'") as exc:
        m.graph(reasoner_contract.DECODER)
    assert "segzero-edge export" in str(exc.value)
    with pytest.raises(ManifestError, match="no 'reasoner' component"):
        m.component("reasoner")


def test_manifest_is_immutable(tmp_path):
    _, m = _engine_dir(tmp_path)
    with pytest.raises(AttributeError):
        m.prompt_version = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        m.components["sam2"]["image_size"] = 3  # type: ignore[index]


def test_sha256_tree_changes_with_content(tmp_path):
    d, _ = _engine_dir(tmp_path)
    before = mf.sha256_tree(d / "sam2")
    (d / "sam2" / "extra.bin").write_bytes(b"1")
    assert mf.sha256_tree(d / "sam2") != before
