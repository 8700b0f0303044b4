"""Result types and the error hierarchy."""

import dataclasses

import numpy as np
import pytest

import segzero_edge
from segzero_edge import errors
from segzero_edge.types import Answer, AnswerObject, Segmentation


def test_public_names():
    from segzero_edge import Answer as A
    from segzero_edge import Segmentation as S

    assert A is Answer and S is Segmentation
    assert {"Answer", "Segmentation", "SegZeroError"} <= set(segzero_edge.__all__)


def test_answer_is_frozen():
    a = Answer(ok=True, box=(1.0, 2.0, 3.0, 4.0), points=((1.5, 2.5),), objects=(AnswerObject((1, 2, 3, 4)),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.ok = False  # type: ignore[misc]
    assert Answer(ok=False, error="no <answer>").box is None


def test_segmentation_mask_is_readonly_and_checked():
    s = Segmentation(mask=np.zeros((4, 5), bool), found=False, timings_ms={"total": 1.0}, error="x")
    with pytest.raises(ValueError):
        s.mask[0, 0] = True
    with pytest.raises(TypeError):
        s.timings_ms["total"] = 2.0  # type: ignore[index]
    with pytest.raises(ValueError, match="2-D bool"):
        Segmentation(mask=np.zeros((4, 5), np.uint8), found=True)


def test_every_error_is_a_segzero_error_and_shows_its_hint():
    classes = [getattr(errors, n) for n in dir(errors) if isinstance(getattr(errors, n), type)]
    classes = [c for c in classes if issubclass(c, Exception)]
    assert len(classes) >= 10
    for cls in classes:
        assert issubclass(cls, errors.SegZeroError)
    err = errors.InputError("the image is empty", hint="pass an HxWx3 uint8 array")
    assert isinstance(err, ValueError)
    assert str(err) == "the image is empty\n  -> pass an HxWx3 uint8 array"
    assert isinstance(errors.BackendUnavailableError("x"), ImportError)
    assert "re-export" in str(errors.ManifestError("bad"))


def test_validation_error_reports_numbers():
    err = errors.ExportValidationError("mask IoU below 0.999", numbers={"mask_iou": 0.97})
    assert err.numbers == {"mask_iou": 0.97}
    assert "mask_iou=0.97" in str(err)


def test_missing_extra_names_the_extra():
    err = errors.missing_extra("the ONNX Runtime backend", "ort")
    assert "pip install 'segzero-edge[ort]'" in str(err)
