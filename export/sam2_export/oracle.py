"""The parity oracle: ``SAM2ImagePredictor`` replicated line by line with the model's own modules.

``sam2.sam2_image_predictor`` imports torchvision, which cannot be imported with CPU torch here
(reference/environment.md §1.8), so the predictor's logic is reproduced:

* preprocessing: ``SAM2Transforms`` = ToTensor, ``Resize((S, S))`` (bilinear, antialias) and ImageNet
  ``Normalize``, done with ``F.interpolate(..., antialias=True)`` (bit-identical, §1.8 workaround B);
* ``set_image``: ``forward_image`` + ``_prepare_backbone_features`` + ``no_mem_embed``;
* ``predict``: ``_prep_prompts`` + ``_predict`` (box corners first with labels 2/3, the official
  prompt encoder and mask decoder, ``repeat_image`` for batches, ``postprocess_masks`` = bilinear
  upsampling straight to the original size, threshold at 0, low-res logits clamped to +-32).

Where torchvision works, ``tests/sam2/test_oracle.py`` compares this class with the real predictor.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: SAM2Transforms' normalization (facebookresearch/sam2: sam2/utils/transforms.py).
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)


def official_preprocess(rgb: np.ndarray, resolution: int) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB -> ``[1, 3, S, S]`` float32, bit-identical to ``SAM2Transforms``."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255)[None]
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)[
        0
    ]
    mean, std = torch.tensor(PIXEL_MEAN), torch.tensor(PIXEL_STD)
    return ((x - mean[:, None, None]) / std[:, None, None])[None]


class OfficialPredictor:
    """``SAM2ImagePredictor`` semantics on an official ``SAM2Base`` model (see module docstring)."""

    def __init__(self, model: torch.nn.Module, mask_threshold: float = 0.0) -> None:
        self.model = model
        self.mask_threshold = mask_threshold
        s = model.image_size
        self._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
        self._features: dict | None = None
        self._orig_hw: tuple[int, int] | None = None

    @torch.no_grad()
    def set_image(self, rgb: np.ndarray) -> dict[str, torch.Tensor]:
        """Encode ``(H, W, 3)`` uint8 RGB; returns the features (also kept for ``predict``)."""
        self._orig_hw = (int(rgb.shape[0]), int(rgb.shape[1]))
        return self.set_preprocessed(official_preprocess(rgb, self.model.image_size), self._orig_hw)

    @torch.no_grad()
    def set_preprocessed(self, image: torch.Tensor, orig_hw: tuple[int, int]) -> dict[str, torch.Tensor]:
        m = self.model
        self._orig_hw = orig_hw
        backbone_out = m.forward_image(image)
        _, vision_feats, _, _ = m._prepare_backbone_features(backbone_out)
        if m.directly_add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + m.no_mem_embed
        feats = [
            f.permute(1, 2, 0).view(1, -1, *size)
            for f, size in zip(vision_feats[::-1], self._bb_feat_sizes[::-1])
        ][::-1]
        self._features = {"image_embed": feats[-1], "high_res_feats": feats[:-1]}
        return {"image_embed": feats[-1], "high_res_feats_0": feats[0], "high_res_feats_1": feats[1]}

    def _prompts(self, point_coords, point_labels, box, mask_input):
        """``_prep_prompts`` + the box/point merge of ``_predict``: (coords, labels) and mask input."""
        h, w = self._orig_hw
        res = self.model.image_size
        concat = None
        if point_coords is not None:
            c = torch.as_tensor(point_coords, dtype=torch.float).clone()
            c[..., 0] = c[..., 0] / w
            c[..., 1] = c[..., 1] / h
            c = c * res
            lab = torch.as_tensor(point_labels, dtype=torch.int)
            if c.ndim == 2:
                c, lab = c[None], lab[None]
            concat = (c, lab)
        if box is not None:
            b = torch.as_tensor(box, dtype=torch.float).reshape(-1, 2, 2).clone()
            b[..., 0] = b[..., 0] / w
            b[..., 1] = b[..., 1] / h
            b = b * res
            b_lab = torch.tensor([[2, 3]], dtype=torch.int).repeat(b.size(0), 1)
            concat = (
                (b, b_lab)
                if concat is None
                else (torch.cat([b, concat[0]], 1), torch.cat([b_lab, concat[1]], 1))
            )
        masks = None
        if mask_input is not None:
            masks = torch.tensor(np.asarray(mask_input), dtype=torch.float)
            if masks.ndim == 3:
                masks = masks[None]
        return concat, masks

    def _decoder_inputs(self, concat, masks):
        m = self.model
        sparse, dense = m.sam_prompt_encoder(points=concat, boxes=None, masks=masks)
        batched = concat is not None and concat[0].shape[0] > 1
        return dict(
            image_embeddings=self._features["image_embed"],
            image_pe=m.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=batched,
            high_res_features=list(self._features["high_res_feats"]),
        )

    @torch.no_grad()
    def predict(
        self, point_coords=None, point_labels=None, box=None, mask_input=None, multimask_output: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``SAM2ImagePredictor.predict``: (masks ``[(B,) C, H, W]`` bool, IoUs, clamped low-res logits)."""
        concat, masks = self._prompts(point_coords, point_labels, box, mask_input)
        low_res, iou, _, _ = self.model.sam_mask_decoder(
            multimask_output=multimask_output, **self._decoder_inputs(concat, masks)
        )
        up = F.interpolate(low_res.float(), self._orig_hw, mode="bilinear", align_corners=False)
        low_res = torch.clamp(low_res, -32.0, 32.0)
        return tuple(t.squeeze(0).numpy() for t in (up > self.mask_threshold, iou, low_res))

    @torch.no_grad()
    def predict_all_tokens(self, point_coords=None, point_labels=None, box=None, mask_input=None):
        """All four tokens before the choice: (low-res ``[B,4,r,r]``, IoU ``[B,4]``, object ``[B,1]``)."""
        concat, masks = self._prompts(point_coords, point_labels, box, mask_input)
        low_res, iou, _, obj = self.model.sam_mask_decoder.predict_masks(
            **self._decoder_inputs(concat, masks)
        )
        return low_res.numpy(), iou.numpy(), obj.numpy()


def segzero_choice(masks: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seg-Zero's pick from multimask output: the mask with the highest predicted IoU, per object.

    Args: masks ``[B, 3, H, W]``, scores ``[B, 3]``. Returns (masks ``[B, H, W]``, scores ``[B]``,
    token index ``[B]`` in 1..3).
    """
    best = np.argmax(scores, axis=1)
    rows = np.arange(len(best))
    return masks[rows, best], scores[rows, best], best + 1
