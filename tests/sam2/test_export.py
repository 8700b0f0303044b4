"""`export sam2` of a random-weight hiera-t checkpoint: files, manifest entries, validation numbers."""

from __future__ import annotations

import pytest
from sam2_testutil import CONFIG, REASONER_FILE

from segzero_edge.manifest import sha256_file
from segzero_edge.sam2 import contract as sam2_contract
from segzero_edge.sam2.contract import DECODER, ENCODER, Sam2Settings, check_graphs


def test_graphs_and_io_follow_the_contract(manifest, engine_dir, official_model):
    enc, dec = check_graphs(manifest)
    s = official_model.image_size
    assert enc.file == "sam2/image_encoder.onnx" and dec.file == "sam2/mask_decoder.onnx"
    assert [(t.name, t.shape) for t in enc.inputs] == [("image", (1, 3, s, s))]
    assert [(t.name, t.shape) for t in enc.outputs] == [
        (sam2_contract.IMAGE_EMBED, (1, 256, s // 16, s // 16)),
        (sam2_contract.HIGH_RES_FEATS_0, (1, 32, s // 4, s // 4)),
        (sam2_contract.HIGH_RES_FEATS_1, (1, 64, s // 8, s // 8)),
    ]
    assert [(t.name, t.shape) for t in dec.inputs[3:]] == [
        (sam2_contract.POINT_COORDS, ("num_objects", "num_points", 2)),
        (sam2_contract.POINT_LABELS, ("num_objects", "num_points")),
        (sam2_contract.MASK_INPUT, ("num_objects", 1, s // 4, s // 4)),
        (sam2_contract.HAS_MASK_INPUT, ("num_objects",)),
    ]
    assert [(t.name, t.shape) for t in dec.outputs] == [
        (sam2_contract.LOW_RES_MASKS, ("num_objects", 4, s // 4, s // 4)),
        (sam2_contract.IOU_SCORES, ("num_objects", 4)),
        (sam2_contract.OBJECT_SCORE_LOGITS, ("num_objects", 1)),
    ]
    assert dict(dec.dynamic_dims) == {"num_objects": (1, 1, 16), "num_points": (1, 4, 16)}
    assert enc.precision == dec.precision == "fp32"

    import onnx

    for spec in (enc, dec):
        model = onnx.load(str(engine_dir / spec.file), load_external_data=False)
        assert {o.domain: o.version for o in model.opset_import}[""] == 18
        assert [i.name for i in model.graph.input] == [t.name for t in spec.inputs]


def test_settings_come_from_the_model(manifest, official_model):
    s = Sam2Settings.from_mapping(manifest.component("sam2"))
    assert s.config == f"configs/sam2.1/{CONFIG}.yaml"
    assert s.image_size == official_model.image_size and s.low_res_size == official_model.image_size // 4
    md = official_model.sam_mask_decoder
    assert (s.stability_delta, s.stability_threshold) == (
        md.dynamic_multimask_stability_delta,
        md.dynamic_multimask_stability_thresh,
    )
    assert s.default_mask_mode == "best" and s.mask_threshold == 0.0


def test_sources_files_and_the_other_component_are_kept(manifest, engine_dir, sam2_checkpoint):
    (src,) = [x for x in manifest.sources if x.component == "sam2"]
    assert src.sha256 == sha256_file(sam2_checkpoint) and src.details["config"].endswith(f"{CONFIG}.yaml")
    assert sorted(f.path for f in manifest.files) == sorted(
        [REASONER_FILE, "sam2/image_encoder.onnx", "sam2/mask_decoder.onnx"]
    )
    assert manifest.component("reasoner")["input_size"] == 840
    assert manifest.validation["reasoner"]["note"] == "stand-in component"
    assert sorted(p.name for p in engine_dir.parent.iterdir()) == ["engine"]  # no temporary folder left


def test_validation_numbers_in_manifest(manifest):
    v = manifest.validation["sam2"]
    assert v["precision"] == "fp32" and len(v["images"]) == 1
    assert set(v["prompt_kinds"]) == {"box+points", "box", "points", "point", "3 objects", "box+points+mask"}
    assert set(v["mask_iou_min_per_kind"]) == set(v["prompt_kinds"])
    assert v["mask_iou_min"] >= 0.999 and v["runtime_mask_iou_min"] >= 0.99
    # 1 image x (1+1+1+1+3+1 objects) x 2 mask modes
    assert v["num_masks_compared"] == 8 * 2
    assert v["reference_foreground_fraction"]["nontrivial"] > 0.5  # the IoUs are over real masks
    for name in (
        "encoder.image_embed",
        "encoder.high_res_feats_0",
        "encoder.high_res_feats_1",
        "decoder.low_res_masks",
        "decoder.iou_scores",
        "decoder.object_score_logits",
    ):
        assert v["max_abs_diff"][name] <= 1e-4 * max(1.0, v["reference_max_abs"][name]), name
        assert v["reference_max_abs"][name] > 0, name  # the comparison saw non-zero outputs
    assert v["runtime_preprocess_max_abs_diff"] <= 2e-6
    assert v["mask_choice_agreement"] == 1.0


@pytest.mark.parametrize("name", ["sam2.1_hiera_t", "sam2.1-hiera-tiny", "facebook/sam2.1-hiera-tiny"])
def test_config_aliases_resolve(name):
    from segzero_edge.export.sam2_export import Sam2ExportConfig

    assert Sam2ExportConfig(config=name).config == "configs/sam2.1/sam2.1_hiera_t.yaml"


def test_encoder_and_decoder_graph_names(manifest):
    assert {ENCODER, DECODER} <= set(manifest.graphs)
