"""Write one component of an engine directory without ever leaving a half-written directory.

    with EngineDirWriter(out_dir, component="sam2") as w:
        write_onnx(w.path("sam2/image_encoder.onnx"))
        preview = w.manifest(settings=..., graphs=..., sources=...)   # e.g. to validate the files
        w.commit(settings=..., graphs=..., sources=..., validation=numbers)

Everything is written into a temporary sibling folder ``.<name>.partial-XXXX`` (same filesystem).
When ``out_dir`` already is an engine directory, its other components are carried over (hard links,
so a multi-GB reasoner costs nothing to keep) and ``Manifest.replace_component`` swaps this one.
``commit`` writes ``manifest.json``, re-reads and verifies the whole temporary directory, and only
then puts it in place of ``out_dir`` (an atomic exchange of the two folders where the OS offers one,
``renameat2(RENAME_EXCHANGE)`` on Linux; otherwise two renames). Any exception before that, a
Ctrl-C, a full disk or a failed validation removes the temporary folder and leaves ``out_dir`` as it
was. A killed process (SIGKILL, power loss) leaves ``out_dir`` intact too, and its hidden temporary
folder (named with its pid) is removed by the next writer of ``out_dir``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from segzero_edge.errors import ExportError
from segzero_edge.manifest import (
    MANIFEST_NAME,
    FileEntry,
    GraphSpec,
    Manifest,
    SourceCheckpoint,
    file_entry,
    load_manifest,
    new_manifest,
    save_manifest,
)

log = logging.getLogger(__name__)

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux ``renameat2``); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    log.debug("renameat2 exchange unavailable (errno %d); using two renames", ctypes.get_errno())
    return False


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(out: Path) -> None:
    """Remove temporary folders of ``out`` left by writers that were killed (their pid is gone)."""
    for p in out.parent.glob(f".{out.name}.*-*-*"):
        kind, _, rest = p.name[len(out.name) + 2 :].partition("-")
        pid = rest.split("-", 1)[0]
        if kind in ("partial", "old") and pid.isdigit() and p.is_dir() and not _pid_alive(int(pid)):
            log.info("removing %s, left by an export that was killed", p)
            shutil.rmtree(p, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


class EngineDirWriter:
    """Context manager that writes component ``component`` of the engine directory ``out_dir``.

    Args:
        out_dir: the engine directory (created if missing; must be empty, or an engine directory).
        component: the component written, e.g. ``"sam2"``; its files go under ``<component>/``.

    Raises (on enter):
        ExportError: ``out_dir`` is a file, or a non-empty folder without ``manifest.json``.
        ManifestError, EngineIncompatibleError: ``out_dir``'s manifest is invalid or of another
            prompt version (export into a fresh directory instead).
    """

    def __init__(self, out_dir: str | Path, component: str) -> None:
        self.out_dir = Path(out_dir).absolute()
        self.component = component
        self.dir: Path | None = None
        self._base: Manifest | None = None
        self._committed = False

    def __enter__(self) -> EngineDirWriter:
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise ExportError(f"--out {out} is a file", hint="pass a directory path")
        base = new_manifest()
        if out.is_dir() and (out / MANIFEST_NAME).exists():
            base = load_manifest(out, verify="size")
        elif out.is_dir() and any(out.iterdir()):
            raise ExportError(
                f"{out} exists and is not an engine directory (no {MANIFEST_NAME}); refusing to write into it",
                hint="pass a new or empty folder, or an existing engine directory",
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(out)
        self.dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.parent))
        try:
            if (out / MANIFEST_NAME).exists():
                for entry in out.iterdir():
                    if entry.name in (self.component, "trt", MANIFEST_NAME) or entry.name.startswith(".manifest."):
                        continue  # replaced, or engines built from the old graphs (dropped from the manifest)
                    if entry.is_dir():
                        shutil.copytree(entry, self.dir / entry.name, copy_function=_link_or_copy)
                    else:
                        _link_or_copy(str(entry), str(self.dir / entry.name))
            (self.dir / self.component).mkdir()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self._base = base
        return self

    def path(self, relpath: str) -> Path:
        """Where to write ``relpath`` (which must lie under ``<component>/``) in the temporary folder."""
        if self.dir is None:
            raise RuntimeError("EngineDirWriter used outside its `with` block")
        if not relpath.startswith(self.component + "/") or ".." in Path(relpath).parts:
            raise ValueError(f"{relpath!r} is not inside the {self.component}/ folder")
        p = self.dir / relpath
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def _files(self) -> list[FileEntry]:
        root = self.dir / self.component
        return [
            file_entry(self.dir, p.relative_to(self.dir).as_posix()) for p in sorted(root.rglob("*")) if p.is_file()
        ]

    def manifest(
        self,
        *,
        settings: Mapping[str, Any],
        graphs: Mapping[str, GraphSpec],
        sources: Iterable[SourceCheckpoint] = (),
        validation: Mapping[str, Any] | None = None,
    ) -> Manifest:
        """The manifest ``commit`` would write now (nothing is saved): e.g. to open the new graphs."""
        return self._base.replace_component(
            self.component,
            settings=settings,
            graphs=graphs,
            files=self._files(),
            sources=sources,
            validation=validation,
        )

    def commit(
        self,
        *,
        settings: Mapping[str, Any],
        graphs: Mapping[str, GraphSpec],
        sources: Iterable[SourceCheckpoint] = (),
        validation: Mapping[str, Any] | None = None,
    ) -> Manifest:
        """Write the manifest, verify the temporary folder, move it into place; returns the manifest."""
        manifest = self.manifest(settings=settings, graphs=graphs, sources=sources, validation=validation)
        save_manifest(manifest, self.dir)
        load_manifest(self.dir, verify="full")  # every listed file present with the right hash
        _fsync_tree(self.dir / self.component)
        out, tmp = self.out_dir, self.dir
        if out.is_dir() and any(out.iterdir()):
            if not _exchange(tmp, out):
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
                os.rename(out, old / out.name)
                os.rename(tmp, out)
                tmp = old
            shutil.rmtree(tmp, ignore_errors=True)  # now holds the previous contents
        else:
            if out.is_dir():
                out.rmdir()
            os.rename(tmp, out)
        self._committed = True
        log.info("wrote the %s component of %s", self.component, out)
        return manifest

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            log.info("export of %s did not finish; %s left unchanged", self.component, self.out_dir)
