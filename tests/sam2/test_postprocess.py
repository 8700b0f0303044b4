"""Host-side mask choice and upsampling against the official torch code on the same logits."""

from __future__ import annotations

import numpy as np
import pytest

from segzero_edge.sam2.host import (
    choose_masks,
    mask_iou,
    masks_from_logits,
    stability_scores,
    upsample_bilinear,
)


@pytest.mark.parametrize("out_hw", [(480, 640), (256, 256), (100, 77), (1080, 1920), (257, 1023), (17, 3000)])
def test_upsampling_matches_torch_interpolate(out_hw):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    logits = np.random.default_rng(0).standard_normal((2, 256, 256)).astype(np.float32) * 10
    ref = F.interpolate(torch.from_numpy(logits)[:, None], out_hw, mode="bilinear", align_corners=False)[:, 0]
    got = upsample_bilinear(logits, out_hw)
    assert got.shape == (2, *out_hw)
    assert np.abs(got - ref.numpy()).max() <= 1e-5  # ~1 ulp of values up to ~40
    assert np.array_equal(masks_from_logits(logits, out_hw), ref.numpy() > 0)


def _official_decoder():
    pytest.importorskip("sam2", reason="needs the official sam2 package")
    from sam2.modeling.sam.mask_decoder import MaskDecoder
    from sam2.modeling.sam.transformer import TwoWayTransformer

    dec = MaskDecoder(
        transformer_dim=32,
        transformer=TwoWayTransformer(depth=1, embedding_dim=32, num_heads=1, mlp_dim=32),
        dynamic_multimask_via_stability=True,
        dynamic_multimask_stability_delta=0.05,
        dynamic_multimask_stability_thresh=0.98,
    )
    return dec.eval()


def test_single_mode_matches_official_stability_fallback():
    torch = pytest.importorskip("torch")
    dec = _official_decoder()
    rng = np.random.default_rng(1)
    n = 6
    logits = rng.standard_normal((n, 4, 64, 64)).astype(np.float32) * 3
    logits[0, 0] = 5.0  # flat and far from 0: perfectly stable -> token 0
    logits[1, 0] = 0.0  # all inside (-delta, delta]: area_i = 0 -> unstable -> best multimask
    logits[2, 0] = -5.0  # nothing above -delta: union 0 -> stability 1.0 -> token 0
    logits[3, 0, :32] = 3.0  # half the pixels at 3, half at -3 (stable)
    logits[3, 0, 32:] = -3.0
    logits[4, 0, :1] = 0.01  # one row inside the band: area_i/area_u = 0 -> unstable
    logits[4, 0, 1:] = -3.0
    iou = rng.uniform(0, 1, (n, 4)).astype(np.float32)
    ref_logits, ref_iou = dec._dynamic_multimask_via_stability(torch.from_numpy(logits), torch.from_numpy(iou))
    chosen = choose_masks(logits, iou, "single", delta=0.05, threshold=0.98)
    rows = np.arange(n)
    assert np.array_equal(logits[rows, chosen], ref_logits[:, 0].numpy())
    assert np.array_equal(iou[rows, chosen], ref_iou[:, 0].numpy())
    assert chosen[0] == 0 and chosen[2] == 0 and chosen[3] == 0 and chosen[1] > 0 and chosen[4] > 0


def test_best_mode_is_seg_zero_highest_score_of_the_three():
    iou = np.array([[0.99, 0.2, 0.7, 0.1], [0.0, 0.3, 0.3, 0.9]], dtype=np.float32)  # token 0 is never picked
    chosen = choose_masks(np.zeros((2, 4, 8, 8), np.float32), iou, "best")
    assert chosen.tolist() == [2, 3]
    with pytest.raises(ValueError):
        choose_masks(np.zeros((1, 4, 8, 8), np.float32), iou[:1], "largest")


def test_stability_and_iou_helpers():
    assert stability_scores(np.full((1, 4, 4), -1.0, np.float32), 0.05).tolist() == [1.0]
    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert mask_iou(a, b) == 1.0
    a[0, :2] = True
    b[0, 1:3] = True
    assert mask_iou(a, b) == pytest.approx(1 / 3)
    assert masks_from_logits(np.zeros((0, 256, 256), np.float32), (5, 7)).shape == (0, 5, 7)
