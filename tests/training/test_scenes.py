"""The synthetic world: seeded, unambiguous queries, masks that match the objects."""

import numpy as np
import pytest

from segzero_edge.world.scenes import KINDS, generate_queries, generate_samples, generate_scene


def test_samples_are_seeded_and_cover_every_kind():
    a = generate_samples(7, 8, 112)
    b = generate_samples(7, 8, 112)
    assert [q.text for _, q in a] == [q.text for _, q in b]
    assert all(np.array_equal(x.image, y.image) for (x, _), (y, _) in zip(a, b))
    assert [q.kind for _, q in a] == list(KINDS) * 2
    c = generate_samples(8, 8, 112)
    assert [q.text for _, q in a] != [q.text for _, q in c]


def test_masks_are_visible_parts_and_disjoint():
    rng = np.random.default_rng(3)
    for _ in range(20):
        scene = generate_scene(rng, 128)
        total = np.zeros((128, 128), int)
        for i, m in enumerate(scene.masks):
            assert m.shape == (128, 128) and m.dtype == bool and scene.area(i) > 0
            total += m
        assert total.max() == 1, "visible masks must not overlap"


def test_target_colour_matches_the_rendered_pixels():
    for scene, q in generate_samples(1, 12, 160):
        obj = scene.objects[q.target]
        from segzero_edge.world.scenes import COLORS

        pixels = scene.image[scene.masks[q.target]].astype(float)
        mean = pixels.mean(axis=0)
        others = [np.linalg.norm(mean - np.asarray(c)) for c in COLORS.values()]
        assert np.argmin(others) == list(COLORS).index(obj.color), (q.text, mean)


@pytest.mark.parametrize("seed", range(5))
def test_queries_are_unambiguous(seed):
    rng = np.random.default_rng(seed)
    scene = generate_scene(rng, 160)
    for q in generate_queries(scene, rng, 160):
        obj = scene.objects[q.target]
        if q.kind == "attribute":
            words = q.text.removeprefix("the ").split()
            matches = [o for o in scene.objects if all(w in (o.color, o.shape, "shape") for w in words)]
            assert matches == [obj]
        if q.text == "the largest shape":
            assert scene.area(q.target) == max(scene.area(i) for i in range(len(scene.objects)))
        assert obj.describe() in q.reasoning


def test_same_queries_in_another_process():
    import subprocess
    import sys

    code = (
        "from segzero_edge.world.scenes import generate_samples\n"
        "print([q.text for _, q in generate_samples(5, 8, 112)])"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(h), "PATH": ""},
        ).stdout
        for h in (1, 2)
    }
    assert len(runs) == 1


def test_inventory_lists_shapes_in_reading_order():
    """The think's inventory is a function of the image: top third first, then centre, then bottom; left to
    right inside a third (drawing order would be hidden state a model cannot learn)."""
    size = 224
    for scene, query in generate_samples(11, 40, size):
        head = query.reasoning.split(". ")[0]
        listed = [part.split(" at the ")[0].split(" ", 1)[1] for part in head.split(": ", 1)[1].split(", ")]
        keys = sorted((min(int(3 * o.center[1] / size), 2), o.center[0], o.describe()) for o in scene.objects)
        assert listed == [k[2] for k in keys], (query.reasoning, keys)


def test_think_boxes_give_each_shape_its_visible_box_and_change_nothing_else():
    import re

    from segzero_edge.world.scenes import visible_box

    plain = generate_samples(11, 20, 224)
    boxed = generate_samples(11, 20, 224, think_boxes=True)
    for (scene, q), (scene2, q2) in zip(plain, boxed):
        assert (q.text, q.target, q.kind) == (q2.text, q2.target, q2.kind)
        assert np.array_equal(scene.image, scene2.image)
        assert re.sub(r" \[\d+,\d+,\d+,\d+\]", "", q2.reasoning) == q.reasoning
        boxes = [tuple(map(int, b)) for b in re.findall(r"\[(\d+),(\d+),(\d+),(\d+)\]", q2.reasoning)]
        assert sorted(boxes) == sorted(visible_box(m) for m in scene.masks)
        assert visible_box(scene.masks[q.target]) in boxes


def test_mentions_name_the_object_each_think_phrase_describes():
    """Every inventory item is a mention of its shape, in reading order; the reference (relation, indirect)
    and the final naming of the target are mentions too; the target's is the last one."""
    size = 224
    for scene, q in generate_samples(21, 40, size):
        spans = q.mentions
        assert spans == tuple(sorted(spans)) and all(0 <= a < b <= len(q.reasoning) for a, b, _ in spans)
        inventory = [m for m in spans if m[1] <= q.reasoning.index(". ")]
        order = sorted(
            range(len(scene.objects)),
            key=lambda k: (min(int(3 * scene.objects[k].center[1] / size), 2), scene.objects[k].center[0]),
        )
        assert [k for _, _, k in inventory] == order
        for a, b, k in inventory:
            assert q.reasoning[a:b].split(" at the ")[0].split(" ", 1)[1] == scene.objects[k].describe()
        a, b, k = spans[-1]
        assert k == q.target and q.reasoning[a:b].startswith("the ")
        assert scene.objects[k].shape in q.reasoning[a:b]
        extra = len(spans) - len(inventory) - 1
        assert extra == (1 if q.kind in ("relation", "indirect") else 0), (q.kind, q.reasoning, spans)
