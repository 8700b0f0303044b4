"""gIoU / cIoU on hand-made masks, checked against hand-computed values."""

import numpy as np
import pytest

from segzero_edge.evaluation import aggregate, sample_iou


def _mask(h, w, *rects):
    m = np.zeros((h, w), bool)
    for y0, y1, x0, x1 in rects:
        m[y0:y1, x0:x1] = True
    return m


def test_hand_computed_scores():
    # A: pred 2x2 at (0,0), gt 2x3 at (0,0): I=4, U=6
    a = sample_iou(_mask(4, 4, (0, 2, 0, 2)), _mask(4, 4, (0, 2, 0, 3)))
    # B: pred 1 pixel, gt 4 pixels elsewhere: I=0, U=5
    b = sample_iou(_mask(4, 4, (3, 4, 3, 4)), _mask(4, 4, (0, 2, 0, 2)))
    # C: failed prediction, gt 3 pixels: miss, I=0, U=3
    c = sample_iou(None, _mask(4, 4, (0, 1, 0, 3)))
    # D: both empty
    d = sample_iou(np.zeros((4, 4), bool), np.zeros((4, 4), np.uint8))
    assert (a.intersection, a.union, b.intersection, b.union, c.union) == (4, 6, 0, 5, 3)
    assert c.failed and d.both_empty and d.iou == 1.0

    s = aggregate([a, b, c, d])
    assert s.giou == pytest.approx((4 / 6 + 0 + 0 + 1) / 4)
    assert s.ciou == pytest.approx(4 / (6 + 5 + 3))
    assert (s.n_samples, s.n_scored, s.n_both_empty, s.n_failed) == (4, 4, 1, 1)
    assert s.failure_rate == 0.25

    official = aggregate([a, b, c, d], drop_both_empty=True)
    assert official.giou == pytest.approx((4 / 6 + 0 + 0) / 3)
    assert official.ciou == pytest.approx(4 / 14)
    assert (official.n_scored, official.n_both_empty) == (3, 1)


def test_ignore_labels_count_as_target_and_shape_mismatch():
    gt = np.zeros((3, 3), np.uint8)
    gt[0, 0] = 255  # ReasonSeg "ignore" regions are drawn as 255 and then cast to bool
    assert sample_iou(_mask(3, 3, (0, 1, 0, 1)), gt).iou == 1.0
    with pytest.raises(ValueError, match="differs"):
        sample_iou(np.zeros((2, 2), bool), gt)


def test_empty_input():
    s = aggregate([])
    assert (s.giou, s.ciou, s.n_samples, s.failure_rate) == (0.0, 0.0, 0, 0.0)


def test_failed_prediction_on_empty_ground_truth_is_a_miss_even_when_dropping_both_empty():
    # The official script records a failure as I = 0, U = |GT| = 0 and keeps it (score 0); only predictions
    # that ran and came out empty on an empty ground truth are dropped.
    failed = sample_iou(None, np.zeros((3, 3), bool))
    empty = sample_iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool))
    hit = sample_iou(_mask(3, 3, (0, 1, 0, 1)), _mask(3, 3, (0, 1, 0, 1)))
    assert failed.failed and not failed.both_empty and failed.iou == 0.0
    assert empty.both_empty and empty.iou == 1.0
    counted = aggregate([failed, empty, hit])
    assert counted.giou == pytest.approx((0 + 1 + 1) / 3) and counted.ciou == 1.0
    assert (counted.n_both_empty, counted.n_failed) == (1, 1)
    official = aggregate([failed, empty, hit], drop_both_empty=True)
    assert official.giou == pytest.approx((0 + 1) / 2) and official.n_scored == 2


def test_box_matching_is_one_to_one_and_maximises_iou():
    from segzero_edge.evaluation.metrics import box_iou, detection_scores, match_boxes

    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching: no shared area
    gt = [(0, 0, 10, 10), (20, 0, 30, 10)]
    # two predictions on the first object: only one may match it
    assert match_boxes([(0, 0, 10, 10), (1, 0, 11, 10)], gt) == 1
    # a greedy choice would pair the middle box with gt 0 (IoU 0.6) and leave gt 1 unmatched; the
    # Hungarian assignment pairs each prediction with the object it covers
    assert match_boxes([(4, 0, 14, 10), (0, 0, 9, 10), (19, 0, 29, 10)], gt) == 2
    assert match_boxes([], gt) == 0 and match_boxes([(0, 0, 1, 1)], []) == 0
    assert match_boxes([(0, 0, 10, 10)], [(0, 0, 10, 20)]) == 1  # IoU 0.5 counts
    assert match_boxes([(0, 0, 10, 10)], [(0, 0, 10, 21)]) == 0
    scores = detection_scores([(2, 2, 1), (1, 3, 1)])
    assert (scores.precision, scores.recall, scores.n_samples) == (2 / 3, 2 / 5, 2)
