"""The world's tiny SAM2 config builds the official SAM2Base, and the exporter takes config files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch (export/train extra)")
pytest.importorskip("sam2", reason="needs the official sam2 package (make install installs it)")

from segzero_edge.errors import CheckpointError, ConfigError, InputError  # noqa: E402
from segzero_edge.reference.sam2_model import build_sam2_model  # noqa: E402
from segzero_edge.sam2 import contract as sam2_contract  # noqa: E402
from segzero_edge.sam2.configs import SAM2_CONFIGS, is_config_file, resolve_sam2_config  # noqa: E402
from segzero_edge.world import ASSETS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ASSETS / "sam2_tiny.yaml"
CHECKPOINT = ASSETS / "sam2_tiny.pt"


def test_config_builds_the_official_architecture():
    from sam2.modeling.backbones.hieradet import Hiera
    from sam2.modeling.backbones.image_encoder import FpnNeck, ImageEncoder
    from sam2.modeling.sam.mask_decoder import MaskDecoder
    from sam2.modeling.sam.prompt_encoder import PromptEncoder
    from sam2.modeling.sam2_base import SAM2Base

    from segzero_edge.export.sam2_export.onnx_export import feature_shapes
    from segzero_edge.export.sam2_export.wrappers import ImageEncoderGraph

    model = build_sam2_model(str(CONFIG))
    assert type(model) is SAM2Base
    assert isinstance(model.image_encoder, ImageEncoder)
    assert isinstance(model.image_encoder.trunk, Hiera) and isinstance(model.image_encoder.neck, FpnNeck)
    assert isinstance(model.sam_prompt_encoder, PromptEncoder) and isinstance(model.sam_mask_decoder, MaskDecoder)
    assert model.image_size == 224
    # the single-mask stability fallback of build_sam2(apply_postprocessing=True) is applied to files too
    assert model.sam_mask_decoder.dynamic_multimask_via_stability
    shapes = feature_shapes(model)
    assert shapes == {
        sam2_contract.IMAGE_EMBED: (1, 96, 14, 14),
        sam2_contract.HIGH_RES_FEATS_0: (1, 12, 56, 56),
        sam2_contract.HIGH_RES_FEATS_1: (1, 24, 28, 28),
    }
    sizes = [
        shapes[n][2:]
        for n in (sam2_contract.HIGH_RES_FEATS_0, sam2_contract.HIGH_RES_FEATS_1, sam2_contract.IMAGE_EMBED)
    ]
    with torch.no_grad():
        out = ImageEncoderGraph(model, sizes)(torch.randn(1, 3, 224, 224))
    assert [tuple(t.shape) for t in out] == [
        shapes[k] for k in (sam2_contract.IMAGE_EMBED, sam2_contract.HIGH_RES_FEATS_0, sam2_contract.HIGH_RES_FEATS_1)
    ]


def test_config_file_resolution(tmp_path):
    assert resolve_sam2_config(str(CONFIG)) == str(CONFIG)
    assert is_config_file(resolve_sam2_config(str(CONFIG)))
    assert not is_config_file(resolve_sam2_config("sam2.1_hiera_t"))
    with pytest.raises(InputError, match="does not exist") as err:
        resolve_sam2_config(str(tmp_path / "nope.yaml"))
    assert "sam2.1_hiera_t" in str(err.value)  # the hint still lists the official names
    with pytest.raises(InputError, match="unknown SAM2 config 'sam3_hiera_t'") as err:
        resolve_sam2_config("sam3_hiera_t")
    assert all(c.split("/")[-1].removesuffix(".yaml") in str(err.value) for c in SAM2_CONFIGS)


def test_config_file_must_target_the_sam2_package(tmp_path):
    bad = tmp_path / "evil.yaml"
    marker = tmp_path / "instantiated"
    bad.write_text(f"model:\n  _target_: pathlib.Path.touch\n  self: {marker}\n")
    with pytest.raises(ConfigError, match="not an official-format SAM2 config"):
        build_sam2_model(str(bad))
    assert not marker.exists()


def test_shipped_checkpoint_is_official_format_and_small():
    from segzero_edge.reference.sam2_model import load_sam2_model

    assert CHECKPOINT.stat().st_size < 10_000_000
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    assert set(state) == {"model"}
    model = load_sam2_model(CHECKPOINT, str(CONFIG))  # strict: every key and shape must match
    assert np.isclose(
        float(model.image_encoder.trunk.pos_embed.detach().abs().sum()),
        float(state["model"]["image_encoder.trunk.pos_embed"].abs().sum()),
    )
    with pytest.raises(CheckpointError, match="does not match config"):
        load_sam2_model(CHECKPOINT, "sam2.1_hiera_t")
