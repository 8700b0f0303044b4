"""Per-stage latency of ``Segmenter.predict`` (``segzero-edge bench``): percentiles, tokens, memory, machine.

``run_bench(segmenter, requests, runs=10, warmup=2)`` calls ``predict`` ``warmup + runs`` times, cycling over
``requests``, and maps each result's ``timings_ms`` onto the stages of ``STAGES``. Generated tokens per request
and decode tokens/s come from each result's ``generation`` (``GenerationStats``).

Stages run on two threads when the segmenter overlaps SAM2 encoding with reasoning, so the stage times do not
add up to ``total``: ``total`` is the wall time of a request, ``sam2_wait`` the part of the encoding that
reasoning did not hide.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

#: (stage, the ``Segmentation.timings_ms`` keys summed into it, what it measures)
STAGES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("load", ("load",), "input to (H, W, 3) uint8 RGB"),
    ("preprocess", ("preprocess",), "reasoner: resize to the model input, patches, prompt tokens and embeddings"),
    ("vision", ("vision",), "reasoner vision tower (0 when the image embeddings were cached)"),
    ("prefill", ("prefill",), "reasoner: one decoder call over the prompt"),
    ("decode", ("decode",), "reasoner: token-by-token generation with the KV cache"),
    ("sam2_encode", ("sam2_preprocess", "sam2_encoder"), "SAM2 preprocessing + image encoder (worker thread)"),
    ("sam2_wait", ("sam2_wait",), "wait for the SAM2 features after reasoning (encoding not hidden)"),
    ("sam2_decode", ("sam2_decoder",), "SAM2 prompt encoder + mask decoder"),
    ("postprocess", ("sam2_postprocess",), "mask choice, upsampling to the original size, threshold"),
    ("total", ("total",), "predict() wall time"),
)

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Stats:
    """Summary of a sample of values (milliseconds, tokens, ...): p50/p90/p99 (linear interpolation), mean,
    min, max and the count."""

    p50: float
    p90: float
    p99: float
    mean: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats | None:
        arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
        if arr.size == 0:
            return None
        p50, p90, p99 = (float(v) for v in np.percentile(arr, PERCENTILES))
        return cls(p50, p90, p99, float(arr.mean()), float(arr.min()), float(arr.max()), int(arr.size))


@dataclass(frozen=True)
class BenchRun:
    """One timed request.

    Attributes:
        request: index into the requests. stages: stage -> ms (stages absent from the timings are omitted).
        timings_ms: the raw ``Segmentation.timings_ms``. found: an answer was decoded.
        generated_tokens, prompt_tokens, decode_tokens_per_s, stop_reason: from the reasoner (None if unknown).
        rss_mb: resident memory after the request; gpu_mb: this process's GPU memory (None if unknown).
    """

    request: int
    stages: Mapping[str, float]
    timings_ms: Mapping[str, float]
    found: bool
    generated_tokens: int | None = None
    prompt_tokens: int | None = None
    decode_tokens_per_s: float | None = None
    stop_reason: str | None = None
    rss_mb: float | None = None
    gpu_mb: float | None = None


@dataclass(frozen=True)
class BenchReport:
    """``run_bench``'s result. ``to_dict()`` is the JSON ``segzero-edge bench --out`` writes.

    Attributes:
        stages: stage -> ``Stats`` over the timed runs (ms), in ``STAGES`` order.
        generated_tokens, decode_tokens_per_s: ``Stats`` per request (None when unknown).
        runs: every timed request. warmup: untimed requests before them.
        memory: ``peak_rss_mb`` (process lifetime, loading included), ``rss_mb_after_runs``, ``gpu_peak_mb``.
        wall_s: seconds for warm-up and timed runs.
    """

    stages: Mapping[str, Stats]
    generated_tokens: Stats | None
    decode_tokens_per_s: Stats | None
    runs: tuple[BenchRun, ...]
    warmup: int
    memory: Mapping[str, float | None]
    wall_s: float
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": {k: asdict(v) for k, v in self.stages.items()},
            "stage_descriptions": {name: desc for name, _, desc in STAGES if name in self.stages},
            "generated_tokens": asdict(self.generated_tokens) if self.generated_tokens else None,
            "decode_tokens_per_s": asdict(self.decode_tokens_per_s) if self.decode_tokens_per_s else None,
            "memory": dict(self.memory),
            "timed_runs": len(self.runs),
            "warmup_runs": self.warmup,
            "wall_s": self.wall_s,
            "runs": [asdict(r) | {"stages": dict(r.stages), "timings_ms": dict(r.timings_ms)} for r in self.runs],
            **dict(self.extra),
        }


def stage_times(timings_ms: Mapping[str, float]) -> dict[str, float]:
    """``Segmentation.timings_ms`` -> stage ms (``STAGES``); a stage none of whose keys is present is left out."""
    out = {}
    for name, keys, _ in STAGES:
        present = [float(timings_ms[k]) for k in keys if k in timings_ms]
        if present:
            out[name] = sum(present)
    return out


# -- memory and machine ---------------------------------------------------------------------------------


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process so far (MB), or None where ``resource`` is missing."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def rss_mb() -> float | None:
    """Current resident set size (MB) from /proc (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def gpu_memory_mb(pid: int | None = None) -> float | None:
    """GPU memory used by this process (MB, all GPUs) per NVML (``nvidia-ml-py``) or ``nvidia-smi``; None
    where neither answers (no NVIDIA GPU, or Jetson, whose integrated GPU shares host memory: see peak RSS)."""
    pid = os.getpid() if pid is None else pid
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            used = 0
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if p.pid == pid and p.usedGpuMemory:
                        used += p.usedGpuMemory
            return used / 2**20
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # not installed, no driver: try nvidia-smi
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [line.split(",") for line in out.strip().splitlines() if "," in line]
    return float(sum(float(mb) for p, mb in rows if p.strip() == str(pid)))


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: The SIMD extensions that change which CPU kernels ONNX Runtime and torch run (hence their ratio).
SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "asimd", "sve")


def cpu_simd() -> str:
    """The ``SIMD_FLAGS`` this CPU reports (``/proc/cpuinfo``), space-separated; "" where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    return " ".join(flag for flag in SIMD_FLAGS if flag in have)
    except OSError:
        pass
    return ""


def machine_info() -> dict[str, Any]:
    """CPU, cores (and the ones this process may use), OS, Python, load average, versions of the stack."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": {
            d: _version(d)
            for d in ("segzero-edge", "onnxruntime", "onnxruntime-gpu", "tensorrt", "numpy", "tokenizers", "pillow")
        },
    }


# -- the benchmark ----------------------------------------------------------------------------------------


def run_bench(
    segmenter: Any,
    requests: Sequence[tuple[Any, str]],
    *,
    runs: int = 10,
    warmup: int = 2,
    on_run: Callable[[int, BenchRun | None], None] | None = None,
    track_gpu: bool = False,
) -> BenchReport:
    """Time ``segmenter.predict`` on ``requests`` (``(image, text)`` pairs, cycled).

    Args:
        segmenter: a ``Segmenter`` (anything with ``predict(image, text) -> Segmentation``).
        runs: timed requests (>= 1); warmup: untimed requests before them (>= 0).
        on_run: called after every request with its index (warm-ups first) and the ``BenchRun`` (None for a
            warm-up): progress bars.
        track_gpu: sample this process's GPU memory after every request (``gpu_memory_mb``).
    """
    for name, value, low in (("runs", runs, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{name} must be an int >= {low}, got {value!r}")
    if not requests:
        raise InputError("no requests to benchmark", hint="pass at least one (image, text) pair")
    timed: list[BenchRun] = []
    gpu_peak: float | None = None
    t0 = time.perf_counter()
    for i in range(warmup + runs):
        k = i % len(requests)
        image, text = requests[k]
        res = segmenter.predict(image, text)
        gpu = gpu_memory_mb() if track_gpu else None
        if gpu is not None:
            gpu_peak = max(gpu_peak or 0.0, gpu)
        if i < warmup:
            if on_run is not None:
                on_run(i, None)
            continue
        g = res.generation
        run = BenchRun(
            request=k,
            stages=stage_times(res.timings_ms),
            timings_ms=dict(res.timings_ms),
            found=res.found,
            generated_tokens=g.generated_tokens if g is not None else None,
            prompt_tokens=g.prompt_tokens if g is not None else None,
            decode_tokens_per_s=g.decode_tokens_per_s if g is not None else None,
            stop_reason=g.stop_reason if g is not None else None,
            rss_mb=rss_mb(),
            gpu_mb=gpu,
        )
        timed.append(run)
        if on_run is not None:
            on_run(i, run)
    wall = time.perf_counter() - t0
    names = [name for name, _, _ in STAGES]
    stages = {n: s for n in names if (s := Stats.of([r.stages[n] for r in timed if n in r.stages])) is not None}
    return BenchReport(
        stages=stages,
        generated_tokens=Stats.of([r.generated_tokens for r in timed if r.generated_tokens is not None]),
        decode_tokens_per_s=Stats.of([r.decode_tokens_per_s for r in timed if r.decode_tokens_per_s is not None]),
        runs=tuple(timed),
        warmup=warmup,
        memory={"peak_rss_mb": peak_rss_mb(), "rss_mb_after_runs": rss_mb(), "gpu_peak_mb": gpu_peak},
        wall_s=wall,
    )


def markdown_table(report: Mapping[str, Any]) -> str:
    """The stage table of a ``BenchReport.to_dict()`` as markdown (ms, p50/p90/p99/mean)."""
    lines = ["| stage | p50 ms | p90 ms | p99 ms | mean ms | n |", "|---|---:|---:|---:|---:|---:|"]
    for name, s in report["stages"].items():
        lines.append(f"| {name} | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | {s['mean']:.1f} | {s['n']} |")
    for key, label, fmt in (
        ("generated_tokens", "generated tokens / request", ".0f"),
        ("decode_tokens_per_s", "decode tokens/s", ".1f"),
    ):
        s = report.get(key)
        if s:
            lines.append(
                f"| {label} | {s['p50']:{fmt}} | {s['p90']:{fmt}} | {s['p99']:{fmt}} | {s['mean']:{fmt}} | {s['n']} |"
            )
    return "\n".join(lines)
