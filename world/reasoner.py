"""The world's tiny reasoner: its tokenizer corpus, its random initial checkpoint, and supervised warm-start.

* ``world_corpus(records)``: the texts the offline BPE tokenizer is trained on: the chat-template pieces,
  the Seg-Zero user text of every train query, and every train target (templated think + answer).
* ``build_initial_checkpoint``: a random Qwen2.5-VL of the ``MODEL_SIZE`` shape with that tokenizer
  (``segzero_edge.reference.builders``).
* ``target_text(record, solution)``: the SFT target ``<think>{reasoning}</think><answer>{JSON}</answer>``
  with the answer in Seg-Zero's format (``bbox`` [x1, y1, x2, y2], ``points_1`` / ``points_2`` [x, y], model-input
  pixels, the same string ``training.data.solution_to_answer`` writes), followed by ``<|im_end|>``.
* ``run_sft``: our own loop (see ``sft.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from segzero_edge.errors import TrainingError
from segzero_edge.prompt import DEFAULT_SYSTEM_PROMPT, IM_END, SEG_ZERO, VISION_REASONER, seg_zero_user_text
from segzero_edge.reference.builders.qwen import QwenSize
from segzero_edge.training.rewards import parse_solution

logger = logging.getLogger(__name__)

#: The world reasoner's shapes (< 1M parameters; trained on a CPU in about an hour). 4 vision blocks with
#: full attention in 1 and 3: 2 blocks cannot work out where a token is (the tower's 2-D RoPE is relative
#: only), 4 can (docs/world.md, grounding loss).
MODEL_SIZE = QwenSize(
    name="world",
    hidden_size=128,
    intermediate_size=256,
    num_layers=3,
    num_heads=4,
    num_kv_heads=2,
    mrope_section=(4, 6, 6),
    vocab_size=None,
    tie_word_embeddings=False,
    max_window_layers=3,
    vision_depth=4,
    vision_hidden_size=64,
    vision_intermediate_size=128,
    vision_num_heads=2,
    window_size=112,
    fullatt_block_indexes=(1, 3),
    input_size=224,
)
#: The BPE vocabulary bound of the world tokenizer.
BPE_VOCAB_SIZE = 1200
#: Input size of the world reasoner when it is built; afterwards always read from segzero_edge.json.
BUILD_INPUT_SIZE = 224


def answer_json(solution: str) -> str:
    """The Seg-Zero answer JSON of a ``solution`` string (``<box>..</box><points>..</points>``)."""
    box, points = parse_solution(solution)
    if box is None or points is None:
        raise TrainingError(f"not a Seg-Zero solution string: {solution!r}")
    return (
        f'{{"bbox": [{box[0]},{box[1]},{box[2]},{box[3]}], "points_1": [{points[0][0]},{points[0][1]}], '
        f'"points_2": [{points[1][0]},{points[1][1]}]}}'
    )


def target_text(reasoning: str, solution: str, family: str = SEG_ZERO) -> str:
    """The assistant turn the SFT teaches: think, answer, then ``<|im_end|>`` (so generation stops). The
    answer is Seg-Zero's JSON object, or for ``vision_reasoner`` the solution's JSON list as it is."""
    answer = solution if family == VISION_REASONER else answer_json(solution)
    return f"<think>{reasoning}</think><answer>{answer}</answer>{IM_END}"


def world_corpus(rows: list[tuple[str, str, str]]) -> list[str]:
    """Tokenizer training texts from ``(question, reasoning, solution)`` rows of the train split."""
    texts = [
        "system\n" + DEFAULT_SYSTEM_PROMPT + "\n",
        "user\n",
        "assistant\n",
        "0 1 2 3 4 5 6 7 8 9 , . : ; ' \" ( ) [ ] { } < > / _ - |",
    ]
    for question, reasoning, solution in rows:
        texts.append(seg_zero_user_text(question))
        texts.append(target_text(reasoning, solution)[: -len(IM_END)])
    return texts


def build_initial_checkpoint(out_dir: Path, corpus: list[str], *, seed: int) -> Path:
    """The random ``MODEL_SIZE`` Qwen2.5-VL with a tokenizer trained on ``corpus``, written to ``out_dir``."""
    from segzero_edge.reference.builders import build_tiny_qwen25vl

    logger.info("building the initial checkpoint in %s (seed %d)", out_dir, seed)
    return build_tiny_qwen25vl(
        out_dir,
        MODEL_SIZE,
        input_size=BUILD_INPUT_SIZE,
        seed=seed,
        overwrite=True,
        tokenizer_corpus=corpus,
        bpe_vocab_size=BPE_VOCAB_SIZE,
    )
