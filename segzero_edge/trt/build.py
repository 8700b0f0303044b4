"""``segzero-edge build``: TensorRT engines from an engine directory's ONNX graphs, on this device.

Per graph a precision policy (``POLICIES``; the tracker's three graphs are FP32): the SAM2 image encoder is
built FP16 with the numerically
sensitive layers pinned to FP32 (normalization, softmax, reductions, ``pow``, ``sqrt``/``exp``/``log``,
with ``OBEY_PRECISION_CONSTRAINTS``); the SAM2 mask decoder is FP32 (3.7 GFLOP: cheap, and FP16 flips
mask choices on small objects; TF32, which TensorRT enables by default on Ampere and newer, is turned
off too, as it rounds matmul/conv inputs to 10-bit mantissas like FP16). Dynamic inputs get one
optimization profile from the manifest's ``dynamic_dims`` (``profiles.profile_shapes``), e.g. 1..16
objects for the decoder.

Engines are written to ``trt/.<key>.partial-*`` first, checked (``check`` callback, e.g. masks vs ONNX
Runtime FP32), moved to ``trt/<key>/`` (``key = <gpu>-<tensorrt version>``), and only then recorded
in ``manifest.json`` (atomic write). A failed build or check leaves the directory as it was.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EngineIncompatibleError, InputError
from ..files import exclusive, publish_modes, remove_stale, staging_dir
from ..manifest import Manifest, TrtBuild, file_entry, load_manifest, save_manifest, utc_now
from ..sam2.contract import DECODER as SAM2_DECODER
from ..sam2.contract import ENCODER as SAM2_ENCODER
from ..tracker.contract import MASK_DECODER as TRACK_DECODER
from ..tracker.contract import MEMORY_ATTENTION, MEMORY_ENCODER
from .profiles import Shape, build_key, profile_shapes

log = logging.getLogger(__name__)

#: graph -> precision policy. Graphs without one are built only when named, in FP32.
#: The tracker graphs are FP32 until measured on a GPU (the memory attention's softmax runs over 28,736 keys
#: with masked slots); `--precision GRAPH=fp16-mixed` builds one in FP16, and the build check decides.
POLICIES: dict[str, str] = {
    SAM2_ENCODER: "fp16-mixed",
    SAM2_DECODER: "fp32",
    MEMORY_ATTENTION: "fp32",
    TRACK_DECODER: "fp32",
    MEMORY_ENCODER: "fp32",
}
PRECISIONS = ("fp16-mixed", "fp32")


@dataclass(frozen=True)
class BuildOptions:
    """Settings of ``segzero-edge build``.

    Attributes:
        graphs: graph names to build; empty = every graph of the manifest that has a policy.
        precision: per-graph override of ``POLICIES`` (``"fp16-mixed"`` or ``"fp32"``).
        workspace_gib: builder workspace limit.
    """

    graphs: tuple[str, ...] = ()
    precision: Mapping[str, str] | None = None
    workspace_gib: float = 4.0

    def __post_init__(self) -> None:
        bad = {g: p for g, p in (self.precision or {}).items() if p not in PRECISIONS}
        if bad:
            raise ConfigError(f"unknown precision {bad}", hint=f"use one of {', '.join(PRECISIONS)}")
        if not 0 < self.workspace_gib <= 1024:
            raise ConfigError(f"workspace_gib {self.workspace_gib} must be in (0, 1024]")


@dataclass(frozen=True)
class GraphPlan:
    """What to build for one graph: its ONNX file, precision policy, profile and engine file name."""

    graph: str
    onnx: str
    precision: str
    profiles: Mapping[str, tuple[Shape, Shape, Shape]]
    engine_name: str


def plan_build(manifest: Manifest, options: BuildOptions = BuildOptions()) -> list[GraphPlan]:
    """The graphs to build with their precision and optimization profiles (no TensorRT needed).

    Raises:
        InputError: a requested graph is not in the manifest.
        ManifestError: a dynamic input without a profile.
    """
    names = list(options.graphs) or [g for g in manifest.graphs if g in POLICIES]
    unknown = [g for g in names if g not in manifest.graphs]
    if unknown or not names:
        raise InputError(
            f"no graph(s) {unknown or 'with a TensorRT policy'} in this engine directory "
            f"(it has: {', '.join(sorted(manifest.graphs)) or 'none'})",
            hint="export the component first, or name graphs with --graphs",
        )
    overrides = dict(options.precision or {})
    return [
        GraphPlan(
            graph=g,
            onnx=manifest.graphs[g].file,
            precision=overrides.get(g, POLICIES.get(g, "fp32")),
            profiles=profile_shapes(manifest.graphs[g]),
            engine_name=f"{g}.engine",
        )
        for g in names
    ]


def _pin_sensitive_layers(network, trt) -> int:
    """Pin normalization / softmax / reduction / pow / sqrt / exp / log layers to FP32; returns the count."""
    pinned = 0
    always = {trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX, trt.LayerType.REDUCE}
    unary = {trt.UnaryOperation.SQRT, trt.UnaryOperation.EXP, trt.UnaryOperation.LOG}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        pin = layer.type in always
        if layer.type == trt.LayerType.ELEMENTWISE:
            layer.__class__ = trt.IElementWiseLayer  # the Python API's way to reach the subclass fields
            pin = layer.op == trt.ElementWiseOperation.POW
        elif layer.type == trt.LayerType.UNARY:
            layer.__class__ = trt.IUnaryLayer
            pin = layer.op in unary
        floats = (trt.float32, trt.float16)
        if not pin or any(layer.get_output(j).dtype not in floats for j in range(layer.num_outputs)):
            continue  # also leaves integer shape arithmetic alone
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def _network_flags(trt) -> int:
    """``create_network`` flags: explicit batch, which TensorRT 8.x (JetPack 6.0 ships 8.6) must be asked
    for (0 there means implicit batch, which the ONNX parser rejects); in 10.x it is the only mode and
    the flag is deprecated."""
    major = int(str(trt.__version__).split(".")[0])
    if major < 10 and hasattr(trt, "NetworkDefinitionCreationFlag"):
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def build_engine(onnx_path: Path, plan: GraphPlan, *, workspace_gib: float) -> tuple[bytes, dict[str, Any]]:
    """Build one serialized engine; returns it and what was done (precision, pinned layers, profile).

    Raises:
        BackendUnavailableError: tensorrt missing.
        EngineIncompatibleError: the ONNX parser or the builder failed (the parser's errors are listed).
    """
    from .cuda import import_tensorrt

    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "no details"
        raise EngineIncompatibleError(
            f"TensorRT {trt.__version__} cannot parse {onnx_path.name}: {errors}",
            hint="use TensorRT >= 8.6 (opset 18) on the device, or run this graph on ONNX Runtime",
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if plan.profiles:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in plan.profiles.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    done: dict[str, Any] = {
        "precision": plan.precision,
        "profiles": {k: [list(s) for s in v] for k, v in plan.profiles.items()},
    }
    if plan.precision == "fp16-mixed":
        if hasattr(trt.BuilderFlag, "FP16") and hasattr(trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS"):
            config.set_flag(trt.BuilderFlag.FP16)
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
            done["fp32_layers"] = _pin_sensitive_layers(network, trt)
        else:  # strongly typed TensorRT: precisions come from the ONNX types, which are FP32 here
            log.warning("TensorRT %s has no FP16 builder flag; building %s in FP32", trt.__version__, plan.graph)
            done["precision"] = "fp32"
    if done["precision"] == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default; FP32 here means IEEE FP32
        done["tf32"] = False
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineIncompatibleError(
            f"TensorRT could not build {plan.graph} (see the TensorRT log above)",
            hint="try --workspace-gib larger, or fp32 for this graph",
        )
    return bytes(memoryview(serialized)), done


def build_record(
    engine_dir: Path,
    folder: str,
    plans: list[GraphPlan],
    *,
    key: str,
    gpu_name: str,
    compute_capability: str,
    tensorrt_version: str,
    settings: Mapping[str, Any],
) -> TrtBuild:
    """A ``TrtBuild`` for engines lying in ``engine_dir/folder`` (hashes read from disk)."""
    engines = {p.graph: f"{folder}/{p.engine_name}" for p in plans}
    return TrtBuild(
        key=key,
        gpu_name=gpu_name,
        compute_capability=compute_capability,
        tensorrt_version=tensorrt_version,
        engines=engines,
        files=tuple(file_entry(engine_dir, rel) for rel in engines.values()),
        created_utc=utc_now(),
        settings=settings,
    )


def install_build(engine_dir: Path, staged: Path, build: TrtBuild) -> TrtBuild:
    """Move staged engines to ``trt/<key>/`` (replacing an older build of that key) and record them.

    The manifest is re-read (another component may have changed meanwhile) and written atomically.
    """
    target = engine_dir / "trt" / build.key
    old = None
    publish_modes(staged)
    with exclusive(engine_dir):
        if target.exists():
            old = staging_dir(target, "old")
            os.rename(target, old / build.key)
        os.rename(staged, target)
        final = TrtBuild(
            **{
                **{f: getattr(build, f) for f in build.__dataclass_fields__},
                "engines": {g: f"trt/{build.key}/{Path(p).name}" for g, p in build.engines.items()},
                "files": tuple(file_entry(engine_dir, f"trt/{build.key}/{Path(f.path).name}") for f in build.files),
            }
        )
        save_manifest(load_manifest(engine_dir, verify="size").with_trt_build(final), engine_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def build_engines(
    engine_dir: str | Path,
    options: BuildOptions = BuildOptions(),
    *,
    check: Callable[[Manifest], Mapping[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrtBuild:
    """Build, check and record TensorRT engines for this GPU (see the module docstring).

    Args:
        engine_dir: an engine directory.
        options: graphs, precision overrides, workspace.
        check: called with a manifest that lists the staged engines; returns numbers recorded in the
            build's settings under ``"check"``, or raises to reject the build.
        progress: called with a message before each graph.

    Returns:
        The recorded ``TrtBuild``.
    """
    from .cuda import gpu_info, import_tensorrt

    engine_dir = Path(engine_dir)
    trt = import_tensorrt()
    gpu = gpu_info()
    manifest = load_manifest(engine_dir, verify="full")
    key = build_key(gpu.name, trt.__version__)
    plans = plan_build(manifest, options)
    (engine_dir / "trt").mkdir(exist_ok=True)
    remove_stale(engine_dir / "trt")
    staged = staging_dir(engine_dir / "trt" / key)
    try:
        graphs: dict[str, Any] = {}
        for plan in plans:
            if progress:
                progress(f"building {plan.graph} ({plan.precision})")
            data, graphs[plan.graph] = build_engine(engine_dir / plan.onnx, plan, workspace_gib=options.workspace_gib)
            with open(staged / plan.engine_name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        settings: dict[str, Any] = {"graphs": graphs, "workspace_gib": options.workspace_gib}
        record = dict(
            key=key,
            gpu_name=gpu.name,
            compute_capability=gpu.compute_capability,
            tensorrt_version=trt.__version__,
        )
        staged_rel = staged.relative_to(engine_dir).as_posix()
        build = build_record(engine_dir, staged_rel, plans, settings=settings, **record)
        if check is not None:
            if progress:
                progress("checking the engines against ONNX Runtime")
            settings["check"] = dict(check(manifest.with_trt_build(build)))
            build = build_record(engine_dir, staged_rel, plans, settings=settings, **record)
        return install_build(engine_dir, staged, build)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
