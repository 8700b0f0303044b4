"""The torch reference backend of the SAM2 stage: the official ``sam2`` model, used as SAM2ImagePredictor uses it.

``sam2.sam2_image_predictor`` imports torchvision, which cannot be imported with CPU torch here
(reference/environment.md §1.8), so the predictor's logic is reproduced with the model's own modules:

* preprocessing: ``SAM2Transforms`` = ToTensor, ``Resize((S, S))`` (bilinear, antialias) and ImageNet
  ``Normalize``, done with ``F.interpolate(..., antialias=True)`` (bit-identical, §1.8 workaround B);
* ``set_image``: ``forward_image`` + ``_prepare_backbone_features`` + ``no_mem_embed``;
* ``predict``: ``_prep_prompts`` + ``_predict`` (box corners first with labels 2/3, the official
  prompt encoder and mask decoder, ``repeat_image`` for batches, ``postprocess_masks`` = bilinear
  upsampling straight to the original size, threshold at 0, low-res logits clamped to +-32).

Two users:

* ``OfficialPredictor`` is the parity oracle of the exporter's validation, the SAM2 tests and
  ``benchmarks/bench_sam2.py`` (the ``SAM2ImagePredictor`` API, numpy in and out).
* ``TorchSam2Backend`` (``open_sam2_backend``) is the ``backend="torch"`` backend of the one SAM2 pipeline
  (``segzero_edge.sam2.Sam2Pipeline``), built from the official checkpoint the engine directory was exported
  from.

torch and sam2 are imported lazily (extra ``torch``); importing this module costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, CheckpointError, InputError, missing_extra
from ..manifest import Manifest, Verify
from ..sam2.contract import (
    COMPONENT,
    DECODER_OUTPUTS,
    FEATURES,
    HAS_MASK_INPUT,
    HIGH_RES_FEATS_0,
    HIGH_RES_FEATS_1,
    IMAGE_EMBED,
    MASK_INPUT,
    POINT_COORDS,
    POINT_LABELS,
    Sam2Settings,
)

log = logging.getLogger(__name__)

#: SAM2Transforms' normalization (facebookresearch/sam2: sam2/utils/transforms.py).
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise missing_extra("the torch reference SAM2 backend", "torch", cause=exc) from exc
    return torch


def official_preprocess(rgb: np.ndarray, resolution: int):
    """``(H, W, 3)`` uint8 RGB -> ``[1, 3, S, S]`` float32 torch tensor, bit-identical to ``SAM2Transforms``."""
    torch = _torch()
    import torch.nn.functional as F

    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float().div(255)[None]
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)[0]
    mean, std = torch.tensor(PIXEL_MEAN), torch.tensor(PIXEL_STD)
    return ((x - mean[:, None, None]) / std[:, None, None])[None]


def encode_image(model, image) -> dict[str, Any]:
    """``set_image`` on a preprocessed ``[1, 3, S, S]`` tensor: the three features (torch tensors) by name.

    ``image_embed`` ``[1, 256, S/16, S/16]`` (``no_mem_embed`` added), ``high_res_feats_0``
    ``[1, 32, S/4, S/4]``, ``high_res_feats_1`` ``[1, 64, S/8, S/8]``.
    """
    torch = _torch()
    s = model.image_size
    sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
    with torch.no_grad():
        backbone_out = model.forward_image(image)
        _, vision_feats, _, _ = model._prepare_backbone_features(backbone_out)
        if model.directly_add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + model.no_mem_embed
        feats = [f.permute(1, 2, 0).view(1, -1, *size) for f, size in zip(vision_feats[::-1], sizes[::-1])][::-1]
    return {IMAGE_EMBED: feats[2], HIGH_RES_FEATS_0: feats[0], HIGH_RES_FEATS_1: feats[1]}


def decode_tokens(model, feats: dict[str, Any], points, masks=None):
    """The official prompt encoder + ``MaskDecoder.predict_masks`` for a batch of objects.

    Args:
        feats: ``encode_image``'s tensors. points: ``(coords [B, P, 2] in S-space, labels [B, P] int)``.
        masks: previous low-res logits ``[B, 1, S/4, S/4]`` or None.

    Returns:
        torch tensors: all four tokens' low-res logits ``[B, 4, S/4, S/4]``, IoU ``[B, 4]``, object
        score logits ``[B, 1]`` (no choice, no clamp).
    """
    torch = _torch()
    with torch.no_grad():
        sparse, dense = model.sam_prompt_encoder(points=points, boxes=None, masks=masks)
        low_res, iou, _, obj = model.sam_mask_decoder.predict_masks(
            image_embeddings=feats[IMAGE_EMBED],
            image_pe=model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=points[0].shape[0] > 1,
            high_res_features=[feats[HIGH_RES_FEATS_0], feats[HIGH_RES_FEATS_1]],
        )
    return low_res, iou, obj


class OfficialPredictor:
    """``SAM2ImagePredictor`` semantics on an official ``SAM2Base`` model (see module docstring).

    Stateful like the original (``set_image`` then ``predict``): one instance per thread.
    """

    def __init__(self, model, mask_threshold: float = 0.0) -> None:
        self.model = model
        self.mask_threshold = mask_threshold
        self._features: dict | None = None
        self._orig_hw: tuple[int, int] | None = None

    def set_image(self, rgb: np.ndarray) -> dict:
        """Encode ``(H, W, 3)`` uint8 RGB; returns the features (also kept for ``predict``)."""
        self._orig_hw = (int(rgb.shape[0]), int(rgb.shape[1]))
        return self.set_preprocessed(official_preprocess(rgb, self.model.image_size), self._orig_hw)

    def set_preprocessed(self, image, orig_hw: tuple[int, int]) -> dict:
        self._orig_hw = orig_hw
        self._features = encode_image(self.model, image)
        return dict(self._features)

    def _prompts(self, point_coords, point_labels, box, mask_input):
        """``_prep_prompts`` + the box/point merge of ``_predict``: (coords, labels) and mask input."""
        torch = _torch()
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
            concat = (b, b_lab) if concat is None else (torch.cat([b, concat[0]], 1), torch.cat([b_lab, concat[1]], 1))
        masks = None
        if mask_input is not None:
            masks = torch.tensor(np.asarray(mask_input), dtype=torch.float)
            if masks.ndim == 3:
                masks = masks[None]
        return concat, masks

    def _decoder_inputs(self, concat, masks):
        m = self.model
        sparse, dense = m.sam_prompt_encoder(points=concat, boxes=None, masks=masks)
        return dict(
            image_embeddings=self._features[IMAGE_EMBED],
            image_pe=m.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=concat is not None and concat[0].shape[0] > 1,
            high_res_features=[self._features[HIGH_RES_FEATS_0], self._features[HIGH_RES_FEATS_1]],
        )

    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None, multimask_output: bool = True):
        """``SAM2ImagePredictor.predict``: (masks ``[(B,) C, H, W]`` bool, IoUs, clamped low-res logits)."""
        torch = _torch()
        import torch.nn.functional as F

        with torch.no_grad():
            concat, masks = self._prompts(point_coords, point_labels, box, mask_input)
            low_res, iou, _, _ = self.model.sam_mask_decoder(
                multimask_output=multimask_output, **self._decoder_inputs(concat, masks)
            )
            up = F.interpolate(low_res.float(), self._orig_hw, mode="bilinear", align_corners=False)
            low_res = torch.clamp(low_res, -32.0, 32.0)
        return tuple(t.squeeze(0).cpu().numpy() for t in (up > self.mask_threshold, iou, low_res))

    def predict_all_tokens(self, point_coords=None, point_labels=None, box=None, mask_input=None):
        """All four tokens before the choice: (low-res ``[B,4,r,r]``, IoU ``[B,4]``, object ``[B,1]``)."""
        concat, masks = self._prompts(point_coords, point_labels, box, mask_input)
        return tuple(t.cpu().numpy() for t in decode_tokens(self.model, self._features, concat, masks))


def segzero_choice(masks: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seg-Zero's pick from multimask output: the mask with the highest predicted IoU, per object.

    Args: masks ``[B, 3, H, W]``, scores ``[B, 3]``. Returns (masks ``[B, H, W]``, scores ``[B]``,
    token index ``[B]`` in 1..3).
    """
    best = np.argmax(scores, axis=1)
    rows = np.arange(len(best))
    return masks[rows, best], scores[rows, best], best + 1


def torch_device(device: str) -> str:
    """``Segmenter``/``Sam2Pipeline`` device names -> a torch device: ``"auto"`` is CUDA when torch sees a GPU."""
    torch = _torch()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" or device == "cuda" or device.startswith("cuda:"):
        if device != "cpu" and not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"device {device!r}: this torch has no CUDA", hint="use device='cpu', or install a CUDA build of torch"
            )
        return device
    raise InputError(
        f"device {device!r} is not a torch device", hint="use 'auto', 'cpu' or 'cuda' with backend='torch'"
    )


class TorchSam2Backend:
    """The ``Sam2Backend`` of the official model: SAM2ImagePredictor's preprocessing, the official prompt
    encoder and mask decoder, and its upsampling (``F.interpolate`` straight to the original size).

    ``encode``/``decode`` take and return the graphs' numpy tensors by name, like the graph backends, so the
    one ``Sam2Pipeline`` runs it: prompt checking and grouping and the mask choice are the pipeline's.

    Args:
        model: an official ``SAM2Base`` (eval mode) on ``device``.
        device: the torch device.
    """

    name = "torch"
    max_objects = None
    max_points = None

    def __init__(self, model, device: str) -> None:
        self.model, self.device = model, device

    def _tensor(self, arr: np.ndarray):
        return _torch().from_numpy(np.array(arr, dtype=np.float32)).to(self.device)

    def preprocess(self, rgb: np.ndarray, settings: Sam2Settings) -> np.ndarray:
        """``SAM2Transforms`` in torch (bit-identical to the official one): ``[1, 3, S, S]`` float32."""
        return official_preprocess(rgb, settings.image_size).numpy()

    def encode(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """``image`` [1,3,S,S] float32 -> the three features by name (float32 numpy)."""
        feats = encode_image(self.model, self._tensor(image))
        return {k: feats[k].float().cpu().numpy() for k in FEATURES}

    def decode(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Decoder inputs by name -> ``low_res_masks`` [N,4,r,r], ``iou_scores`` [N,4],
        ``object_score_logits`` [N,1]."""
        feats = {k: self._tensor(feeds[k]) for k in FEATURES}
        coords = self._tensor(feeds[POINT_COORDS])
        labels = _torch().from_numpy(np.asarray(feeds[POINT_LABELS]).astype(np.int32)).to(self.device)
        has = np.asarray(feeds[HAS_MASK_INPUT])
        if has.any() and not has.all():
            raise InputError("mask_input must be given for all objects of a call or for none")
        masks = self._tensor(feeds[MASK_INPUT]) if has.all() else None
        low_res, iou, obj = decode_tokens(self.model, feats, (coords, labels), masks)
        return dict(
            zip(DECODER_OUTPUTS, (low_res.float().cpu().numpy(), iou.float().cpu().numpy(), obj.float().cpu().numpy()))
        )

    def masks(self, logits: np.ndarray, size_hw: tuple[int, int], threshold: float) -> np.ndarray:
        """``postprocess_masks``: bilinear straight to the original size, then ``> threshold``."""
        torch = _torch()
        import torch.nn.functional as F

        if len(logits) == 0:
            return np.zeros((0, *size_hw), dtype=bool)
        with torch.no_grad():
            up = F.interpolate(torch.from_numpy(logits[:, None].copy()), size_hw, mode="bilinear", align_corners=False)
        return (up[:, 0] > threshold).numpy()


def open_sam2_backend(
    engine_dir: str | Path,
    manifest: Manifest,
    settings: Sam2Settings,
    *,
    device: str = "auto",
    threads: int | None = None,
    checkpoint: str | Path | None = None,
    verify: Verify = "full",
) -> TorchSam2Backend:
    """The torch backend of an engine directory's SAM2, from the official checkpoint it was exported from.

    Args:
        engine_dir, manifest, settings: the engine directory, its manifest and its sam2 settings.
        device: ``"auto"`` (CUDA when torch sees one), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        threads: torch intra-op threads (``torch.set_num_threads``, process-wide); None leaves torch's.
        checkpoint: the official ``.pt``; default: the source recorded in the manifest (``sources``).
        verify: ``"full"`` also checks the checkpoint's sha256 against the manifest.

    Raises:
        CheckpointError: no usable checkpoint. BackendUnavailableError: torch/sam2 or CUDA missing.
    """
    from .sam2_model import load_sam2_model
    from .sources import recorded_source, resolve_checkpoint

    torch = _torch()
    try:
        import sam2  # noqa: F401
    except ImportError as exc:
        raise missing_extra("the torch reference SAM2 backend (official sam2 package)", "torch", cause=exc) from exc
    if threads is not None:
        torch.set_num_threads(int(threads))
    path = resolve_checkpoint(manifest, COMPONENT, checkpoint, verify=verify)
    source = recorded_source(manifest, COMPONENT)
    config = (source.details.get("config") if source is not None else None) or settings.config
    dev = torch_device(device)
    model = load_sam2_model(path, config).to(dev)
    if model.image_size != settings.image_size:
        raise CheckpointError(
            f"{path} has input size {model.image_size}, the engine {settings.image_size}",
            hint="pass the checkpoint this engine came from",
        )
    log.info("sam2 torch backend: %s on %s", config, dev)
    return TorchSam2Backend(model, dev)
