"""``python -m segzero_edge.world retrain --out DIR``: both world models from scratch, in parallel.

The tiny SAM2 (``sam2_train``) and the tiny reasoner (``train-reasoner``: dataset, tokenizer, SFT, GRPO)
do not depend on each other, so they run as two processes with one torch thread each, the way the
shipped models were trained (one per core of the 2-core machine). Every step is seeded and uses the
shipped settings, so on the same software stack and thread count the result should be the shipped
checkpoints bit for bit (docs/world.md says which parts of that were verified).

When the SAM2 finishes, its video path (memory attention, memory encoder, pointers) and decoder train on
moving clips (``train-sam2-video``, shipped settings) into ``DIR/sam2_video/sam2_tiny.pt``: the world SAM2.

Writes ``DIR/sam2/`` (``sam2_tiny.pt``, ``train_log.json``), ``DIR/sam2_video/`` (``sam2_tiny.pt`` and its
``.json`` log), ``DIR/reasoner/`` (``grpo/final`` is the reasoner), ``DIR/<name>.log`` per training and
``DIR/retrain.json`` (wall times, commands).
Both trainings resume from their last saved state when the command is run again after a crash.
``make world-retrain`` runs this and then compares the new models' accuracy with the shipped table.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from segzero_edge.errors import TrainingError

logger = logging.getLogger(__name__)

#: The shipped SAM2 run: optimizer steps, and a time budget large enough never to stop it early (so the
#: learning-rate schedule, and the result, depend on the step count alone).
SAM2_STEPS = 3000
SAM2_MINUTES = 600.0


#: A training that starts when another one has finished (its input).
AFTER = {"sam2_video": "sam2"}


def commands(out: Path, seed: int = 0) -> dict[str, list[str]]:
    """The training commands (shipped settings, one thread each); ``AFTER`` says which wait for which."""
    py = sys.executable
    return {
        "sam2": [
            py,
            "-m",
            "segzero_edge.world.sam2_train",
            "--out",
            str(out / "sam2"),
            "--steps",
            str(SAM2_STEPS),
            "--minutes",
            str(SAM2_MINUTES),
            "--seed",
            str(seed),
            "--threads",
            "1",
            "--no-progress",
        ],
        "sam2_video": [
            py,
            "-m",
            "segzero_edge.world",
            "train-sam2-video",
            "--sam2",
            str(out / "sam2" / "sam2_tiny.pt"),
            "--out",
            str(out / "sam2_video" / "sam2_tiny.pt"),
            "--seed",
            str(seed),
            "--threads",
            "1",
        ],
        "reasoner": [
            py,
            "-m",
            "segzero_edge.world",
            "train-reasoner",
            "--out",
            str(out / "reasoner"),
            "--seed",
            str(seed),
            "--threads",
            "1",
        ],
    }


def retrain(out: str | Path, *, seed: int = 0, poll_s: float = 30.0) -> dict:
    """Run both trainings in parallel under ``out``; returns (and writes) ``retrain.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cmds = commands(out, seed)
    start = time.perf_counter()
    procs, logs, ended = {}, {}, {}

    def launch(name: str) -> None:
        logs[name] = (out / f"{name}.log").open("a")
        logger.info("starting %s: %s (log: %s)", name, " ".join(cmds[name]), out / f"{name}.log")
        procs[name] = subprocess.Popen(cmds[name], stdout=logs[name], stderr=subprocess.STDOUT)

    for name in cmds:
        if name not in AFTER:
            launch(name)
    try:
        while len(ended) < len(procs):
            time.sleep(poll_s)
            for name, p in list(procs.items()):
                if name not in ended and p.poll() is not None:
                    ended[name] = time.perf_counter() - start
                    logger.info("%s finished with code %d after %.0f s", name, p.returncode, ended[name])
                    for later, first in AFTER.items():
                        if first == name and p.returncode == 0:
                            launch(later)
            logger.info(
                "retrain: %.0f min elapsed, running: %s",
                (time.perf_counter() - start) / 60,
                ", ".join(n for n in procs if n not in ended) or "none",
            )
    finally:
        for name, p in procs.items():
            if p.poll() is None:
                p.terminate()
            logs[name].close()
    failed = {n: p.returncode for n, p in procs.items() if p.returncode != 0}
    if failed:
        raise TrainingError(f"retraining failed: {failed}", hint=f"see {out}/<name>.log; rerun to resume")
    result = {
        "seconds": {**{n: round(s, 1) for n, s in ended.items()}, "total": round(time.perf_counter() - start, 1)},
        "commands": {n: " ".join(c) for n, c in cmds.items()},
        "reasoner": str(out / "reasoner" / "grpo" / "final"),
        "sam2": str(out / "sam2_video" / "sam2_tiny.pt"),
    }
    (out / "retrain.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
