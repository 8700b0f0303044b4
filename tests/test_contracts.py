"""One home per contract: graph and tensor names live in the components' contract modules only.

``segzero_edge/{sam2,reasoner,tracker,lens}/contract.py`` define every graph name and graph input/output name;
the exporter writes them and the runtime reads them from there. This test fails when one
of those names is written as a string literal anywhere else in the runtime, the torch side, the exporter, the
benchmarks or the tests. Not scanned: ``training/`` and ``world/``, which talk to transformers models whose
own argument names (``pixel_values``, ``attention_mask``...) coincide with ours and never to our graphs. Not
checked: the SAM2 encoder input ``image``, a word used everywhere (records, chat content types), and the two
onnxruntime-genai benchmark scripts, which run in a venv of their own without segzero_edge (onnxruntime-genai
brings its own onnxruntime) and spell the names the genai config binds to our graphs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from segzero_edge.lens import contract as lens_contract
from segzero_edge.reasoner import contract as reasoner_contract
from segzero_edge.sam2 import contract as sam2_contract
from segzero_edge.tracker import contract as tracker_contract

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("segzero_edge", "reference", "export", "benchmarks", "tests")
HOMES = {
    ROOT / "segzero_edge/sam2/contract.py",
    ROOT / "segzero_edge/reasoner/contract.py",
    ROOT / "segzero_edge/tracker/contract.py",
    ROOT / "segzero_edge/lens/contract.py",
    Path(__file__),
}
#: run without segzero_edge installed (see the module docstring)
OUTSIDE = {ROOT / "benchmarks/bench_genai.py", ROOT / "benchmarks/genai_models.py"}
EXEMPT = {"image"}
KV_PREFIXES = ("past_key_values.", "present.")


def _names() -> set[str]:
    s, r = sam2_contract, reasoner_contract
    names = {s.ENCODER, s.DECODER, *s.ENCODER_INPUTS, *s.FEATURES, *s.PROMPT_INPUTS, *s.DECODER_OUTPUTS}
    names |= {r.VISION, r.DECODER, r.PIXEL_VALUES, r.IMAGE_EMBEDS, r.INPUTS_EMBEDS, r.ATTENTION_MASK}
    names |= {r.POSITION_IDS, r.LOGITS, r.HIDDEN_STATES, *r.kv_names(2)[0], *r.kv_names(2)[1]}
    t = tracker_contract
    names |= {t.MEMORY_ATTENTION, t.MASK_DECODER, t.MEMORY_ENCODER, *t.ATTENTION_INPUTS, *t.ATTENTION_OUTPUTS}
    names |= {*t.DECODER_INPUTS, *t.DECODER_OUTPUTS, *t.ENCODER_INPUTS, *t.ENCODER_OUTPUTS}
    n = lens_contract
    names |= {n.MASK_DECODER, n.QUERY_HIDDEN, n.SPARSE_PROMPT, *(g for g, _ in n.CONTEXT_GRAPHS.values())}
    return names - EXEMPT


def _literals(tree: ast.AST):
    """(lineno, text) of every string constant (the constant parts of f-strings included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def _offences(path: Path, source: str, names: set[str]) -> list[str]:
    out = []
    for lineno, text in _literals(ast.parse(source)):
        if text in names or text.startswith(KV_PREFIXES):
            out.append(f"{path}:{lineno}: {text!r}")
    return out


def test_graph_io_names_live_in_the_contract_modules_only():
    names = _names()
    files = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py")) if p not in HOMES | OUTSIDE]
    assert len(files) > 100, "the walk found too few files: is the layout right?"
    found = [o for p in files for o in _offences(p.relative_to(ROOT), p.read_text(), names)]
    assert not found, "graph I/O names written outside the contract modules:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        'feeds = {"inputs_embeds": x}',
        'session.run(["low_res_masks"], feeds)',
        'name = f"past_key_values.{i}.key"',
        'manifest.graph("reasoner.decoder")',
    ],
)
def test_the_check_can_fail(source):
    assert len(_offences(Path("fake.py"), source, _names())) == 1


def test_the_names_are_the_published_format():
    """The names are part of the engine-directory format (TensorRT builds and other runtimes bind them):
    changing one is a format change, so they are pinned here, in the one other place allowed to spell them."""
    s, r = sam2_contract, reasoner_contract
    assert (s.ENCODER, s.DECODER) == ("sam2.image_encoder", "sam2.mask_decoder")
    assert s.ENCODER_INPUTS == ("image",)
    assert s.FEATURES == ("image_embed", "high_res_feats_0", "high_res_feats_1")
    assert s.PROMPT_INPUTS == ("point_coords", "point_labels", "mask_input", "has_mask_input")
    assert s.DECODER_OUTPUTS == ("low_res_masks", "iou_scores", "object_score_logits")
    assert (r.VISION, r.DECODER, r.PIXEL_VALUES, r.IMAGE_EMBEDS) == (
        "reasoner.vision",
        "reasoner.decoder",
        "pixel_values",
        "image_embeds",
    )
    assert (r.INPUTS_EMBEDS, r.ATTENTION_MASK, r.POSITION_IDS, r.LOGITS) == (
        "inputs_embeds",
        "attention_mask",
        "position_ids",
        "logits",
    )
    assert r.kv_names(1) == (["past_key_values.0.key", "past_key_values.0.value"], ["present.0.key", "present.0.value"])
