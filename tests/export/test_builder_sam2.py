"""Random SAM2 checkpoints in the official format, loadable by the official builder."""

import pytest

from segzero_edge.errors import InputError

torch = pytest.importorskip("torch")
pytest.importorskip("sam2")

from sam2.build_sam import build_sam2  # noqa: E402

from segzero_edge.reference.builders.sam2 import build_sam2_checkpoint  # noqa: E402
from segzero_edge.sam2.configs import SAM2_CONFIGS, resolve_sam2_config  # noqa: E402


@pytest.mark.parametrize(
    "config",
    [
        "sam2.1_hiera_t",
        "sam2_hiera_t",
        "sam2.1_hiera_s",
        pytest.param("sam2.1_hiera_b+", marks=pytest.mark.slow),
        pytest.param("sam2_hiera_l", marks=pytest.mark.slow),
    ],
)
def test_checkpoint_loads_with_the_official_builder(tmp_path, config):
    path = build_sam2_checkpoint(tmp_path / "ckpt.pt", config, seed=3)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == {"model"}
    model = build_sam2(resolve_sam2_config(config), str(path), device="cpu")  # strict key check inside
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in raw["model"].items())


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a = torch.load(build_sam2_checkpoint(tmp_path / "a.pt", seed=1), weights_only=True)["model"]
    b = torch.load(build_sam2_checkpoint(tmp_path / "b.pt", seed=1), weights_only=True)["model"]
    c = torch.load(build_sam2_checkpoint(tmp_path / "c.pt", seed=2), weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sam2.1_hiera_t", "configs/sam2.1/sam2.1_hiera_t.yaml"),
        ("configs/sam2/sam2_hiera_b+.yaml", "configs/sam2/sam2_hiera_b+.yaml"),
        ("sam2.1_hiera_l.yaml", "configs/sam2.1/sam2.1_hiera_l.yaml"),
        ("facebook/sam2.1-hiera-base-plus", "configs/sam2.1/sam2.1_hiera_b+.yaml"),
        ("sam2-hiera-small", "configs/sam2/sam2_hiera_s.yaml"),
    ],
)
def test_config_names_resolve(name, expected):
    assert resolve_sam2_config(name) == expected
    assert expected in SAM2_CONFIGS


def test_unknown_config_lists_the_valid_ones():
    with pytest.raises(InputError) as exc:
        resolve_sam2_config("sam3_hiera_t")
    assert "sam2.1_hiera_t" in str(exc.value) and "sam2_hiera_l" in str(exc.value)
