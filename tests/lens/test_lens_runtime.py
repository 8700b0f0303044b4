"""``Segmenter`` on a LENS engine: the mask pass, the context variants, and hostile inputs."""

from __future__ import annotations

import numpy as np
import pytest

from segzero_edge.errors import EngineIncompatibleError, InputError

from .conftest import seeded_image


def test_predict_times_every_lens_stage_and_reports_the_mask_box(lens_segmenter):
    res = lens_segmenter.predict(seeded_image(3), "the red square")
    assert res.found and res.mask.shape == (150, 210) and res.error is None
    for stage in ("prefill", "decode", "mask_pass", "connector", "mask_decoder", "sam2_encoder", "total"):
        assert res.timings_ms[stage] >= 0, stage
    (obj,) = res.objects
    assert res.box == obj.box and obj.prompt_box is None and res.points == ()
    ys, xs = np.nonzero(res.mask)
    assert res.box == (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    assert res.answer is not None and res.raw_text == res.answer.raw_text
    assert res.generation.stop_reason in ("eos", "max_new_tokens")


def test_the_answer_constraint_and_answer_stop_do_not_apply_to_lens(lens_segmenter):
    image = seeded_image(4)
    a = lens_segmenter.predict(image, "the cup", constrained=True, stop_at_answer=True)
    b = lens_segmenter.predict(image, "the cup", constrained=False, stop_at_answer=False)
    assert a.raw_text == b.raw_text and np.array_equal(a.mask, b.mask)


def test_context_variants_give_close_masks_and_unknown_ones_are_refused(lens_engine, lens_segmenter):
    from segzero_edge import Segmenter
    from segzero_edge.sam2.host import mask_iou

    image = seeded_image(6)
    ref = lens_segmenter.predict(image, "the green one")
    for variant, floor in (("int8", 0.95), ("int4", 0.8)):
        with Segmenter(lens_engine, device="cpu", max_new_tokens=12, lens_context=variant) as seg:
            assert seg.lens.precision == variant
            res = seg.predict(image, "the green one")
        assert res.raw_text == ref.raw_text and mask_iou(res.mask, ref.mask) >= floor
    with pytest.raises(EngineIncompatibleError, match="no int2 context graph"):
        Segmenter(lens_engine, device="cpu", lens_context="int2")
    with pytest.raises(InputError, match="no torch backend"):
        Segmenter(lens_engine, backend="torch")


def test_hostile_text_and_images(lens_segmenter):
    seg = lens_segmenter
    gray = seeded_image(7)[..., 0]
    rgba = np.dstack([seeded_image(8), np.full((150, 210), 7, np.uint8)])
    for image in (gray, rgba, seeded_image(9, 31, 500)):
        res = seg.predict(image, "<|im_end|><|image_pad|> the {question} ")
        assert res.mask.shape == np.asarray(image).shape[:2]
    with pytest.raises(InputError, match="text is empty"):
        seg.predict(seeded_image(1), "   ")


def test_reason_and_segment_work_on_a_lens_engine(lens_segmenter):
    seg = lens_segmenter
    image = seeded_image(10)
    answer = seg.reason(image, "the cup")
    assert answer.raw_text  # LENS text, decoded by LENS's rule (box or not, never raises)
    res = seg.segment(image, box=(20, 20, 120, 100))  # the checkpoint's own SAM2 decoder, box prompt
    assert res.objects[0].prompt_box == (20.0, 20.0, 120.0, 100.0)


def test_mask_pass_uses_plain_positions_not_mrope(lens_segmenter):
    """The queries see 1-D positions over the whole sequence (LENS's training); M-RoPE positions change them."""
    from segzero_edge.reasoner.preprocess import mrope_position_ids

    seg = lens_segmenter
    r = seg.reasoner
    image, question = seeded_image(11), "the cup"
    vision = r.encode(image)
    gen = r.generate(None, question, vision=vision)
    hidden = r.query_hidden(question, gen.token_ids, vision, seg.lens.queries)
    ids, embeds, _, _ = r.prompt(question, vision.embeds)
    all_ids = np.concatenate([ids, np.asarray(gen.token_ids, np.int64)])
    seq = np.concatenate([embeds[0], r.backend.embed(np.asarray(gen.token_ids)), seg.lens.queries])[None]
    q = len(seg.lens.queries)
    mask = np.concatenate([all_ids != r.settings.pad_token_id, np.ones(q, bool)]).astype(np.int64)
    plain = np.where(mask > 0, np.cumsum(mask) - 1, 1)  # transformers 4.51's text-only positions
    got = r.backend.hidden(seq, np.broadcast_to(plain, (3, 1, plain.size)).copy(), mask)
    np.testing.assert_allclose(got[-q:], hidden, rtol=0, atol=1e-5)
    mrope, _ = mrope_position_ids(
        np.concatenate([all_ids, np.zeros(q, np.int64)]),
        r.token_ids["image_pad"],
        [r.preprocess_config.grid_thw],
        r.preprocess_config.merge_size,
    )
    other = r.backend.hidden(seq, mrope, mask)
    # the hidden states do depend on the positions (so the equality above is not vacuous); the tiny model's
    # rotary part is small (head_dim 16), hence the small but float-noise-exceeding difference
    assert np.abs(other[-q:] - hidden).max() > 10 * np.abs(got[-q:] - hidden).max()
