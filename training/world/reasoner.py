"""The world's tiny reasoner: its tokenizer corpus, its random initial checkpoint, and supervised warm-start.

* ``world_corpus(records)``: the texts the offline BPE tokenizer is trained on: the chat-template pieces,
  the Seg-Zero user text of every train query, and every train target (templated think + answer).
* ``build_initial_checkpoint``: a random Qwen2.5-VL of the ``world`` shape (export/builders/qwen.py) with
  that tokenizer. ``training`` must not import ``export`` (tests/test_layering.py), so it is built by the
  export CLI in a subprocess: ``segzero-edge export tiny-reasoner --size world --tokenizer-corpus ...``.
* ``target_text(record, solution)``: the SFT target ``<think>{reasoning}</think><answer>{JSON}</answer>``
  with the answer in Seg-Zero's format (``bbox`` [x1, y1, x2, y2], ``points_1`` / ``points_2`` [x, y], model-input
  pixels, the same string ``training.data.solution_to_answer`` writes), followed by ``<|im_end|>``.
* ``run_sft``: our own loop (see ``sft.py``).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from segzero_edge.errors import TrainingError
from segzero_edge.prompt import DEFAULT_SYSTEM_PROMPT, IM_END, seg_zero_user_text

from ..rewards import parse_solution

logger = logging.getLogger(__name__)

#: The model shape (export/builders/qwen.py QWEN_SIZES["world"]) and the tokenizer's BPE bound.
MODEL_SIZE = "world"
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


def target_text(reasoning: str, solution: str) -> str:
    """The assistant turn the SFT teaches: think, answer, then ``<|im_end|>`` (so generation stops)."""
    return f"<think>{reasoning}</think><answer>{answer_json(solution)}</answer>{IM_END}"


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


def build_initial_checkpoint(out_dir: Path, corpus: list[str], *, seed: int, work_dir: Path) -> Path:
    """The random ``world``-shaped Qwen2.5-VL with a tokenizer trained on ``corpus`` (export CLI, subprocess)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    corpus_file = work_dir / "tokenizer_corpus.json"
    corpus_file.write_text(json.dumps(corpus))
    cmd = [
        sys.executable,
        "-m",
        "segzero_edge",
        "export",
        "tiny-reasoner",
        "--size",
        MODEL_SIZE,
        "--input-size",
        str(BUILD_INPUT_SIZE),
        "--seed",
        str(seed),
        "--out",
        str(out_dir),
        "--overwrite",
        "--tokenizer-corpus",
        str(corpus_file),
        "--bpe-vocab-size",
        str(BPE_VOCAB_SIZE),
    ]
    logger.info("building the initial checkpoint: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TrainingError(
            f"building the initial world reasoner failed:\n{proc.stderr[-3000:]}",
            hint="run the command above by hand to see the full error",
        )
    return out_dir
