"""The world's multi-object instructions: unambiguous targets, seeded splits, short thinks that are
faithful by construction, and the faithfulness measure itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segzero_edge.world.multi import (
    MULTI_KINDS,
    faithfulness,
    generate_multi_samples,
    write_multi_split,
)


@pytest.fixture(scope="module")
def samples():
    return generate_multi_samples(97_000, 24)


def test_queries_name_every_matching_shape_and_only_those(samples):
    assert {q.kind for _, q in samples} == set(MULTI_KINDS)
    for scene, q in samples:
        objs = scene.objects
        assert len(q.targets) >= 2 and len(set(q.targets)) == len(q.targets)
        assert all(scene.masks[k].any() for k in q.targets)
        if q.kind == "color":
            color = q.text.split()[2]
            assert set(q.targets) == {k for k, o in enumerate(objs) if o.color == color}
        elif q.kind == "shape":
            shape = q.text.split()[1]
            assert set(q.targets) == {k for k, o in enumerate(objs) if o.shape == shape}
        else:  # side: every target lies on that side of the reference, every other shape clearly not
            word = q.text.split()[2]
            axis, sign = {"left": (0, -1), "right": (0, 1), "above": (1, -1), "below": (1, 1)}[word]
            refs = [k for k in range(len(objs)) if k not in q.targets]
            assert any(all(sign * (objs[t].center[axis] - objs[r].center[axis]) > 0 for t in q.targets) for r in refs)
        # answer order = the think's order (reading order): each target is named after the previous one
        at = 0
        for k in q.targets:
            at = q.reasoning.index(f"the {objs[k].describe()} at the", at) + 1


def test_splits_are_seeded_prefixes_and_train_mixes_single_queries():
    a, b = generate_multi_samples(97_000, 6), generate_multi_samples(97_000, 9)
    assert [q for _, q in a] == [q for _, q in b[:6]]
    train = generate_multi_samples(95_000, 8, with_single=True)
    singles = [q for _, q in train if q.kind.startswith("single_")]
    assert len(singles) == 2 and all(len(q.targets) == 1 for q in singles)
    assert all(not q.reasoning.startswith("I see") for q in singles)  # no scene inventory in the short think


def test_faithfulness_of_the_templates_and_of_invented_shapes(samples):
    for scene, q in samples:
        objs = [{"color": o.color, "shape": o.shape} for o in scene.objects]
        assert faithfulness(q.reasoning, objs, list(q.targets)) == {
            "names_targets": True,
            "no_invented": True,
            "faithful": True,
        }
    objs = [{"color": "red", "shape": "circle"}, {"color": "blue", "shape": "star"}]
    assert faithfulness("The red circle and a green star.", objs, [0])["no_invented"] is False
    assert faithfulness("The blue star.", objs, [0])["names_targets"] is False
    assert faithfulness("Red circles: the red circle.", objs, [0])["faithful"] is True
    assert faithfulness(None, objs, [0])["faithful"] is False


def test_split_on_disk_has_one_mask_per_target(tmp_path):
    from segzero_edge.evaluation import open_dataset

    root = write_multi_split("multi_test", tmp_path, count=3)
    records = json.loads((root / "index.json").read_text())
    for rec, sample in zip(records, open_dataset(root)):
        image, union, objects = sample.load_objects()
        assert objects.shape[0] == len(rec["targets"]) == len(rec["masks"])
        assert np.array_equal(union, objects.any(axis=0)) and image.shape[:2] == union.shape
    with pytest.raises(Exception, match="count must be"):
        write_multi_split("multi_test", tmp_path, count=0)
