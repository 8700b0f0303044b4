"""The engine-directory manifest: the one place names, shapes, precisions and hashes live.

An engine directory looks like::

    manifest.json      written last (atomically); describes everything below
    reasoner/          vision.onnx, decoder.onnx (+ external data), embeddings, tokenizer, settings
    sam2/              image_encoder.onnx, mask_decoder.onnx
    trt/<gpu>-<trt>/   TensorRT engines built on the device (a cache; listed under ``trt_builds``)

``load_manifest`` refuses a directory whose manifest is missing, of another format, or whose listed
files are missing, truncated or modified, with an error naming the file. Graph names are
``"<component>.<graph>"`` (e.g. ``"sam2.image_encoder"``); files of a component live under its folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, Literal

from ._version import __version__
from .errors import EngineFileError, EngineIncompatibleError, ManifestError
from .files import umask
from .prompt import PROMPT_VERSION

#: Bumped whenever the schema below changes; the loader refuses any other version.
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

DTYPES = frozenset({"float32", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool"})
PRECISIONS = frozenset({"fp32", "fp16", "bf16", "int8", "int4"})

Verify = Literal["full", "size", "none"]


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


def _plain(value: Any) -> Any:
    """Dataclasses, mappings and tuples -> dicts and lists, for JSON."""
    if is_dataclass(value) and not isinstance(value, type):
        # Not dataclasses.asdict: it deep-copies the read-only MappingProxyType fields, which fails.
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_keys(kind: str, data: Any, cls: type) -> dict:
    if not isinstance(data, Mapping):
        raise ManifestError(f"manifest: {kind} must be an object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ManifestError(f"manifest: unknown {kind} field(s) {sorted(unknown)}")
    return dict(data)


def _safe_relpath(path: str) -> str:
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path:
        raise ManifestError(f"manifest: file path {path!r} must be relative, inside the engine directory")
    return str(p)


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output.

    Attributes:
        name: tensor name in the graph.
        dtype: one of ``DTYPES``.
        shape: ints for fixed dims, strings for named dynamic dims (e.g. ``("num_objects", 4, 2)``).
    """

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise ManifestError("manifest: tensor name must not be empty")
        if self.dtype not in DTYPES:
            raise ManifestError(f"manifest: tensor {self.name!r} has unknown dtype {self.dtype!r}")
        shape = tuple(self.shape)
        for d in shape:
            if isinstance(d, bool) or not isinstance(d, (int, str)) or (isinstance(d, int) and d < 0):
                raise ManifestError(f"manifest: tensor {self.name!r} has invalid dim {d!r}")
        object.__setattr__(self, "shape", shape)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        d = _check_keys("tensor", data, cls)
        return cls(name=str(d.get("name", "")), dtype=str(d.get("dtype", "")), shape=tuple(d.get("shape", ())))


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph of the engine directory.

    Attributes:
        file: path of the ``.onnx`` file relative to the engine directory.
        inputs, outputs: the graph's I/O, in order.
        precision: weight precision, one of ``PRECISIONS``.
        dynamic_dims: for each named dynamic dim, the TensorRT profile ``(min, opt, max)``.
        quantization: quantization settings (e.g. ``{"bits": 4, "block_size": 32, "symmetric": True}``).
        external_data: other files the graph loads (ONNX external weights), relative paths.
    """

    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    precision: str = "fp32"
    dynamic_dims: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    quantization: Mapping[str, Any] = field(default_factory=dict)
    external_data: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "file", _safe_relpath(self.file))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "external_data", tuple(_safe_relpath(p) for p in self.external_data))
        if self.precision not in PRECISIONS:
            raise ManifestError(f"manifest: graph {self.file!r} has unknown precision {self.precision!r}")
        dims = {}
        for name, prof in dict(self.dynamic_dims).items():
            prof = tuple(int(v) for v in prof)
            if len(prof) != 3 or not 1 <= prof[0] <= prof[1] <= prof[2]:
                raise ManifestError(f"manifest: dynamic dim {name!r} needs 1 <= min <= opt <= max, got {prof}")
            dims[str(name)] = prof
        declared = {d for t in (*self.inputs, *self.outputs) for d in t.shape if isinstance(d, str)}
        if set(dims) - declared:
            raise ManifestError(f"manifest: profile for undeclared dims {sorted(set(dims) - declared)}")
        object.__setattr__(self, "dynamic_dims", _frozen_mapping(dims))
        object.__setattr__(self, "quantization", _frozen_mapping(self.quantization))

    def input(self, name: str) -> TensorSpec:
        """The input named ``name`` (``KeyError`` if absent)."""
        for t in self.inputs:
            if t.name == name:
                return t
        raise KeyError(name)

    def output(self, name: str) -> TensorSpec:
        """The output named ``name`` (``KeyError`` if absent)."""
        for t in self.outputs:
            if t.name == name:
                return t
        raise KeyError(name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphSpec:
        d = _check_keys("graph", data, cls)
        return cls(
            file=str(d.get("file", "")),
            inputs=tuple(TensorSpec.from_dict(t) for t in d.get("inputs", ())),
            outputs=tuple(TensorSpec.from_dict(t) for t in d.get("outputs", ())),
            precision=str(d.get("precision", "fp32")),
            dynamic_dims=d.get("dynamic_dims", {}),
            quantization=d.get("quantization", {}),
            external_data=tuple(d.get("external_data", ())),
        )


@dataclass(frozen=True)
class FileEntry:
    """A file of the engine directory with its size in bytes and sha256 (hex)."""

    path: str
    sha256: str
    size: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", _safe_relpath(self.path))
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ManifestError(f"manifest: {self.path}: sha256 must be 64 lower-case hex digits")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ManifestError(f"manifest: {self.path}: size must be a non-negative int")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileEntry:
        d = _check_keys("file", data, cls)
        return cls(path=str(d.get("path", "")), sha256=str(d.get("sha256", "")), size=d.get("size", -1))


@dataclass(frozen=True)
class SourceCheckpoint:
    """A checkpoint an engine was exported from.

    Attributes:
        component: ``"reasoner"`` or ``"sam2"``.
        path: where the checkpoint was at export time (absolute; older manifests may hold the path relative to
            the exporter's working directory).
        sha256: sha256 of the checkpoint file, or of a directory's files (``sha256_tree``).
        details: e.g. ``{"config": "configs/sam2.1/sam2.1_hiera_t.yaml"}`` or the model type.
    """

    component: str
    path: str
    sha256: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", _frozen_mapping(self.details))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceCheckpoint:
        d = _check_keys("source", data, cls)
        return cls(str(d.get("component", "")), str(d.get("path", "")), str(d.get("sha256", "")), d.get("details", {}))


@dataclass(frozen=True)
class TrtBuild:
    """TensorRT engines built on a device from this directory's ONNX graphs (a cache).

    Attributes:
        key: folder name under ``trt/``: ``"<gpu>-<tensorrt version>"``.
        engines: graph name (e.g. ``"sam2.image_encoder"``) -> engine file, relative path.
        files: the engine files with their hashes.
        settings: builder settings (precisions, profiles, workspace).
    """

    key: str
    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    engines: Mapping[str, str]
    files: tuple[FileEntry, ...]
    created_utc: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "engines", _frozen_mapping({k: _safe_relpath(v) for k, v in self.engines.items()}))
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "settings", _frozen_mapping(self.settings))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrtBuild:
        d = _check_keys("trt build", data, cls)
        d["files"] = tuple(FileEntry.from_dict(f) for f in d.get("files", ()))
        try:
            return cls(**d)
        except TypeError as exc:
            raise ManifestError(f"manifest: invalid trt build entry: {exc}") from exc


@dataclass(frozen=True)
class Manifest:
    """Everything the runtime needs to know about an engine directory.

    Attributes:
        segzero_edge_version: version of the exporter that wrote it.
        prompt_version: ``segzero_edge.prompt.PROMPT_VERSION`` at export time.
        created_utc: ISO 8601 time of the last write.
        components: per component (``"reasoner"``, ``"sam2"``) its settings, e.g. input sizes,
            special token ids, generation settings, SAM2 config name.
        graphs: ``"<component>.<graph>"`` -> ``GraphSpec``.
        files: every file of the directory except ``manifest.json`` and ``trt/``, with hashes.
        sources: the checkpoints the engines came from.
        validation: per component, the numbers measured at export (max |diff|, mask IoU, ...).
        trt_builds: TensorRT engines built on devices.
        format_version: ``FORMAT_VERSION``.
    """

    segzero_edge_version: str
    prompt_version: str
    created_utc: str
    components: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    graphs: Mapping[str, GraphSpec] = field(default_factory=dict)
    files: tuple[FileEntry, ...] = ()
    sources: tuple[SourceCheckpoint, ...] = ()
    validation: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    trt_builds: tuple[TrtBuild, ...] = ()
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        components = {k: _frozen_mapping(v) for k, v in self.components.items()}
        object.__setattr__(self, "components", _frozen_mapping(components))
        object.__setattr__(self, "graphs", _frozen_mapping(self.graphs))
        validation = {k: _frozen_mapping(v) for k, v in self.validation.items()}
        object.__setattr__(self, "validation", _frozen_mapping(validation))
        for attr in ("files", "sources", "trt_builds"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        listed = [f.path for f in self.files]
        if len(set(listed)) != len(listed):
            raise ManifestError("manifest: a file is listed twice")
        for name, graph in self.graphs.items():
            if "." not in name:
                raise ManifestError(f"manifest: graph name {name!r} must be '<component>.<graph>'")
            for path in (graph.file, *graph.external_data):
                if path not in listed:
                    raise ManifestError(f"manifest: graph {name!r} uses {path!r}, which is not in the file list")

    # -- queries ---------------------------------------------------------------------------------
    def graph(self, name: str) -> GraphSpec:
        """The graph ``name`` (e.g. ``"sam2.image_encoder"``); ``ManifestError`` if the engine has none."""
        try:
            return self.graphs[name]
        except KeyError:
            have = ", ".join(sorted(self.graphs)) or "none"
            raise ManifestError(
                f"this engine directory has no graph {name!r} (it has: {have})",
                hint=f"export the {name.split('.')[0]!r} component into it with `segzero-edge export`",
            ) from None

    def component(self, name: str) -> Mapping[str, Any]:
        """Settings of component ``name``; ``ManifestError`` if it was never exported."""
        try:
            return self.components[name]
        except KeyError:
            have = ", ".join(sorted(self.components)) or "none"
            raise ManifestError(
                f"this engine directory has no {name!r} component (it has: {have})",
                hint=f"run `segzero-edge export {name} ...` with --out pointing at this directory",
            ) from None

    def has_component(self, name: str) -> bool:
        return name in self.components

    # -- updates (return new manifests) ----------------------------------------------------------
    def replace_component(
        self,
        name: str,
        *,
        settings: Mapping[str, Any],
        graphs: Mapping[str, GraphSpec],
        files: Iterable[FileEntry],
        sources: Iterable[SourceCheckpoint] = (),
        validation: Mapping[str, Any] | None = None,
    ) -> Manifest:
        """A copy with component ``name`` replaced (its graphs, files under ``name/``, sources, numbers).

        TensorRT builds are dropped: they were built from the old graphs.
        """
        prefix = name + "/"
        new_files = tuple(files)
        for f in new_files:
            if not f.path.startswith(prefix):
                raise ManifestError(f"manifest: {f.path!r} of component {name!r} must live under {prefix}")
        for g in graphs:
            if not g.startswith(name + "."):
                raise ManifestError(f"manifest: graph {g!r} of component {name!r} must be named {name}.<graph>")
        return replace(
            self,
            segzero_edge_version=__version__,
            created_utc=utc_now(),
            components={**{k: v for k, v in self.components.items() if k != name}, name: settings},
            graphs={**{k: v for k, v in self.graphs.items() if not k.startswith(name + ".")}, **graphs},
            files=tuple(f for f in self.files if not f.path.startswith(prefix)) + new_files,
            sources=tuple(s for s in self.sources if s.component != name) + tuple(sources),
            validation={**{k: v for k, v in self.validation.items() if k != name}, name: dict(validation or {})},
            trt_builds=(),
        )

    def with_trt_build(self, build: TrtBuild) -> Manifest:
        """A copy with ``build`` added (replacing a build with the same key)."""
        others = tuple(b for b in self.trt_builds if b.key != build.key)
        return replace(self, trt_builds=(*others, build), created_utc=utc_now())

    # -- (de)serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The manifest as plain JSON-ready data."""
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        d = _check_keys("top-level", data, cls)
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            newer = isinstance(version, int) and version > FORMAT_VERSION
            raise ManifestError(
                f"manifest format version {version!r} is not supported (this segzero-edge reads {FORMAT_VERSION})",
                hint="upgrade segzero-edge" if newer else "re-export the engine directory with this segzero-edge",
            )
        try:
            return cls(
                segzero_edge_version=str(d["segzero_edge_version"]),
                prompt_version=str(d["prompt_version"]),
                created_utc=str(d["created_utc"]),
                components=d.get("components", {}),
                graphs={str(k): GraphSpec.from_dict(v) for k, v in d.get("graphs", {}).items()},
                files=tuple(FileEntry.from_dict(f) for f in d.get("files", ())),
                sources=tuple(SourceCheckpoint.from_dict(s) for s in d.get("sources", ())),
                validation=d.get("validation", {}),
                trt_builds=tuple(TrtBuild.from_dict(b) for b in d.get("trt_builds", ())),
                format_version=version,
            )
        except KeyError as exc:
            raise ManifestError(f"manifest: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"manifest: invalid content: {exc}") from exc


def new_manifest() -> Manifest:
    """An empty manifest for this segzero-edge and prompt version."""
    return Manifest(segzero_edge_version=__version__, prompt_version=PROMPT_VERSION, created_utc=utc_now())


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """sha256 (hex) of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def sha256_tree(directory: str | Path) -> str:
    """One sha256 over every regular file of ``directory`` (relative names and contents, sorted)."""
    root = Path(directory)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def file_entry(engine_dir: str | Path, relpath: str) -> FileEntry:
    """A ``FileEntry`` for ``engine_dir/relpath`` as it is on disk now."""
    p = Path(engine_dir) / relpath
    return FileEntry(path=relpath, sha256=sha256_file(p), size=p.stat().st_size)


def save_manifest(manifest: Manifest, engine_dir: str | Path) -> Path:
    """Write ``engine_dir/manifest.json`` atomically (temporary file, fsync, rename), with the mode the umask
    gives new files."""
    engine_dir = Path(engine_dir)
    target = engine_dir / MANIFEST_NAME
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=engine_dir)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600 would hide the manifest from other users
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def verify_files(entries: Iterable[FileEntry], engine_dir: str | Path, verify: Verify = "full") -> None:
    """Check presence, size and (for ``verify="full"``) sha256 of each file; raise naming the first bad one."""
    if verify == "none":
        return
    engine_dir = Path(engine_dir)
    for entry in entries:
        p = engine_dir / entry.path
        if not p.is_file():
            raise EngineFileError(f"engine file {entry.path} is missing from {engine_dir}")
        size = p.stat().st_size
        if size != entry.size:
            raise EngineFileError(f"engine file {entry.path} has {size} bytes, the manifest says {entry.size}")
        if verify == "full" and sha256_file(p) != entry.sha256:
            raise EngineFileError(f"engine file {entry.path} does not match its sha256 in the manifest")


def load_manifest(engine_dir: str | Path, *, verify: Verify = "full", check_prompt: bool = True) -> Manifest:
    """Read and check ``engine_dir/manifest.json``.

    Args:
        engine_dir: the engine directory.
        verify: ``"full"`` checks size and sha256 of every listed file, ``"size"`` only presence and
            size (fast for multi-GB models), ``"none"`` skips the file checks.
        check_prompt: refuse an engine exported with another prompt version.

    Raises:
        ManifestError: no manifest, unreadable JSON, another format version, invalid fields.
        EngineFileError: a listed file is missing, truncated or modified (the message names it).
        EngineIncompatibleError: the prompt version differs from this runtime's.
    """
    if verify not in ("full", "size", "none"):
        raise ValueError(f"verify must be 'full', 'size' or 'none', got {verify!r}")
    engine_dir = Path(engine_dir)
    path = engine_dir / MANIFEST_NAME
    if not engine_dir.is_dir():
        raise ManifestError(
            f"engine directory {engine_dir} does not exist", hint="pass the folder `segzero-edge export --out` wrote"
        )
    if not path.is_file():
        raise ManifestError(
            f"{engine_dir} has no {MANIFEST_NAME}: it is not an engine directory (or its export did not finish)"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc
    manifest = Manifest.from_dict(data)
    if check_prompt and manifest.prompt_version != PROMPT_VERSION:
        raise EngineIncompatibleError(
            f"{engine_dir} was exported for prompt version {manifest.prompt_version!r}; "
            f"this segzero-edge uses {PROMPT_VERSION!r}",
            hint="re-export the engine directory with this segzero-edge version",
        )
    verify_files(manifest.files, engine_dir, verify)
    return manifest
