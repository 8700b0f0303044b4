"""GRPO with two processes on this CPU (gloo), under the launcher docs/training.md tells CPU users to use
(``torchrun``): it is really distributed, the replicas stay equal, the final checkpoint is written once and
holds rank 0's weights, and a run whose rank 1 is killed with SIGKILL resumes at the same step with the same
sampler order as an uninterrupted run. ``run.rank_log`` gives each rank's view (``ranks/rank-<R>.jsonl``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
psutil = pytest.importorskip("psutil")

from .conftest import tiny_config  # noqa: E402
from .test_learning_and_resume import _complete  # noqa: E402

STEPS = 5
#: 4 rows, 2 prompts x 4 generations per step: 8 completions per step, 4 per rank, 2 steps per epoch.
OVERRIDES = {
    "run.max_steps": STEPS,
    "run.save_steps": 2,
    "run.rank_log": True,
    "optim.learning_rate": 1e-2,
    "data.max_rows": 4,
    "grpo.max_completion_length": 8,
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(cfg_file: Path, hf_cache: str) -> subprocess.Popen:
    env = {**os.environ, "HF_DATASETS_CACHE": hf_cache, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    cmd += ["--master_port", str(_port()), "-m", "segzero_edge.training", str(cfg_file)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _config_file(tiny_qwen_dir, tiny_seg_data, out: Path) -> Path:
    from segzero_edge.training.config import dump_config

    cfg_file = out.parent / f"{out.name}.yaml"
    cfg_file.write_text(dump_config(tiny_config(tiny_qwen_dir, tiny_seg_data, out, OVERRIDES)))
    return cfg_file


def _rank_log(out: Path, rank: int) -> dict[int, dict]:
    """The last record of each step (a resumed run appends the steps it redoes)."""
    lines = (out / "ranks" / f"rank-{rank}.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines)}


def _weights_sha256(checkpoint: Path) -> str:
    import hashlib

    from segzero_edge.reference.qwen import load_qwen_model

    digest = hashlib.sha256()
    for _, p in sorted(load_qwen_model(checkpoint).named_parameters(), key=lambda kv: kv[0]):
        digest.update(p.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def straight(tiny_qwen_dir, tiny_seg_data, hf_cache, tmp_path_factory) -> tuple[Path, str, float]:
    """An uninterrupted 2-process run: its output folder, its output, and its wall time in seconds."""
    out = tmp_path_factory.mktemp("dist") / "straight"
    t0 = time.monotonic()
    proc = _torchrun(_config_file(tiny_qwen_dir, tiny_seg_data, out), hf_cache)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-4000:]
    return out, log, time.monotonic() - t0


@pytest.mark.slow
def test_two_processes_share_each_step_and_stay_in_sync(straight):
    out, _, seconds = straight
    ranks = [_rank_log(out, r) for r in (0, 1)]
    for step in range(1, STEPS + 1):
        a, b = ranks[0][step], ranks[1][step]
        assert a["world_size"] == b["world_size"] == 2 and (a["rank"], b["rank"]) == (0, 1)
        assert a["completions"] == b["completions"] == 4  # half of the step's 2 prompts x 4 generations each
        ids = a["prompt_ids"] + b["prompt_ids"]
        assert len(set(ids)) == 2 and all(ids.count(i) == 4 for i in set(ids))  # 2 prompts, 4 rollouts each
        assert a["weights_sha256"] == b["weights_sha256"]  # the replicas are equal after every step
    assert len({ranks[0][s]["weights_sha256"] for s in ranks[0]}) == STEPS  # and they do change
    meta = json.loads((out / "final" / "training_meta.json").read_text())
    assert meta["world_size"] == 2 and meta["gradient_accumulation_steps"] == 1 and meta["global_step"] == STEPS
    print(f"\n2-process GRPO on CPU: {STEPS} steps in {seconds:.1f} s wall (process start and model load included)")


@pytest.mark.slow
def test_the_final_checkpoint_is_written_once_and_holds_rank_0s_weights(straight):
    out, log, _ = straight
    assert log.count("final checkpoint:") == 2  # rank 0's log line and its print; rank 1 writes nothing
    assert _weights_sha256(out / "final") == _rank_log(out, 0)[STEPS]["weights_sha256"]


@pytest.mark.slow
def test_sigkill_of_one_rank_resumes_at_the_same_step_and_sampler_order(
    straight, tiny_qwen_dir, tiny_seg_data, hf_cache, tmp_path
):
    out = tmp_path / "killed"
    cfg_file = _config_file(tiny_qwen_dir, tiny_seg_data, out)
    proc = _torchrun(cfg_file, hf_cache)
    deadline = time.monotonic() + 300
    try:
        while not _complete(out / "checkpoint-2"):
            assert proc.poll() is None, proc.stdout.read()[-4000:]
            assert time.monotonic() < deadline, "no checkpoint-2 within 300 s"
            time.sleep(0.05)
        workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if p.environ().get("RANK") == "1"]
        assert len(workers) == 1
        workers[0].send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 and not (out / "final").exists()
    from segzero_edge.training.checkpoints import find_resume_checkpoint

    resumed_from = find_resume_checkpoint(out, "auto")
    resumed_step = int(Path(resumed_from).name.split("-")[1])
    assert 2 <= resumed_step < STEPS

    logged_before = len((out / "ranks" / "rank-0.jsonl").read_text().splitlines())
    resumed = _torchrun(cfg_file, hf_cache)
    log, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, log[-4000:]
    meta = json.loads((out / "final" / "training_meta.json").read_text())
    assert meta["resumed_from"] == resumed_from and meta["global_step"] == STEPS
    lines = (out / "ranks" / "rank-0.jsonl").read_text().splitlines()
    assert json.loads(lines[logged_before])["step"] == resumed_step + 1  # continued after the checkpoint

    reference = [_rank_log(straight[0], r) for r in (0, 1)]
    for rank in (0, 1):
        got = _rank_log(out, rank)
        for step in range(resumed_step + 1, STEPS + 1):
            assert got[step]["prompt_ids"] == reference[rank][step]["prompt_ids"], (rank, step)
    from segzero_edge.reference.qwen import load_qwen_model

    a = dict(load_qwen_model(out / "final").named_parameters())
    b = dict(load_qwen_model(straight[0] / "final").named_parameters())
    worst = max(float((a[n].detach() - b[n].detach()).abs().max()) for n in a)
    print(f"\nresumed after SIGKILL of rank 1 at checkpoint-{resumed_step}: max |weight difference| {worst:.2e}")
    assert worst < 1e-5


@pytest.mark.slow
def test_fsdp2_on_cpu_matches_the_unsharded_run_or_is_refused(
    straight, tiny_qwen_dir, tiny_seg_data, hf_cache, tmp_path
):
    """The shipped FSDP2 config, adapted to this CPU (2 processes, fp32, no RAM-efficient loading), launched
    as users are told to (``accelerate launch``). accelerate 1.x enables FSDP only for GPU-like distributed
    types, so on the CPU it would silently train unsharded DDP: the trainer refuses that with a ConfigError,
    and the comparison of the full-state-dict checkpoint with the unsharded run is skipped with the reason.
    Where accelerate does shard on the CPU, the comparison runs."""
    from importlib import resources

    import yaml

    shipped = resources.files("segzero_edge.training") / "accelerate" / "fsdp.yaml"
    acc = yaml.safe_load(shipped.read_text())
    acc.update(use_cpu=True, mixed_precision="no", num_processes=2, main_process_port=_port())
    acc["fsdp_config"]["fsdp_cpu_ram_efficient_loading"] = False
    acc_file = tmp_path / "fsdp_cpu.yaml"
    acc_file.write_text(yaml.safe_dump(acc))
    out = tmp_path / "fsdp"
    cfg_file = _config_file(tiny_qwen_dir, tiny_seg_data, out)
    env = {**os.environ, "HF_DATASETS_CACHE": hf_cache, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(acc_file)]
    r = subprocess.run([*cmd, "-m", "segzero_edge.training", str(cfg_file)], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        assert "asks for FSDP, but accelerate did not enable it" in r.stderr + r.stdout, r.stderr[-4000:]
        assert not (out / "final").exists()
        pytest.skip(
            "accelerate does not enable FSDP for MULTI_CPU (accelerate/state.py sets DistributedType.FSDP for "
            "GPU-like types only); the trainer refused the unsharded fallback, as it must"
        )
    from segzero_edge.reference.qwen import load_qwen_model

    a = dict(load_qwen_model(out / "final").named_parameters())
    b = dict(load_qwen_model(straight[0] / "final").named_parameters())
    assert max(float((a[n].detach() - b[n].detach()).abs().max()) for n in a) < 1e-5
