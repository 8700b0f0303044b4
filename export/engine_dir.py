"""Write one component of an engine directory without ever leaving a half-written directory.

    with EngineDirWriter(out_dir, component="sam2") as w:
        write_onnx(w.path("sam2/image_encoder.onnx"))
        preview = w.manifest(settings=..., graphs=..., sources=...)   # e.g. to validate the files
        w.commit(settings=..., graphs=..., sources=..., validation=numbers)

Everything is written into a temporary sibling folder ``.<name>.partial-<pid>-XXXX`` (same filesystem).
``commit`` then takes the output's lock (``segzero_edge.files.exclusive``: two exports into one
directory, one per component, both land), re-reads ``out_dir`` as it is *now*, carries its other
components over (hard links, so a multi-GB reasoner costs nothing to keep), lets
``Manifest.replace_component`` swap this one, writes ``manifest.json``, re-reads and verifies the whole
temporary directory, gives it the modes the umask allows (``files.publish_modes``), and only then puts it
in place of ``out_dir`` (an atomic exchange of the two folders where the OS offers one,
``renameat2(RENAME_EXCHANGE)`` on Linux; otherwise two renames). Any exception before that, a Ctrl-C, a
full disk or a failed validation removes the temporary folder and leaves ``out_dir`` as it was. A killed
process (SIGKILL, power loss) leaves ``out_dir`` intact too; its hidden folder (named with its pid) is
removed by the next writer into the same parent folder (``files.remove_stale``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from segzero_edge.errors import ExportError
from segzero_edge.files import exclusive, publish_modes, remove_stale, replaceable_dir, staging_dir, writable_dir
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


def _fsync_tree(root: Path) -> None:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def _current_base(out: Path) -> Manifest:
    """The manifest ``out`` holds now (a new one when ``out`` is missing or empty)."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file", hint="pass a directory path")
    if out.is_dir() and (out / MANIFEST_NAME).exists():
        return load_manifest(out, verify="size")
    if out.is_dir() and any(out.iterdir()):
        raise ExportError(
            f"{out} exists and is not an engine directory (no {MANIFEST_NAME}); refusing to write into it",
            hint="pass a new or empty folder, or an existing engine directory",
        )
    return new_manifest()


def check_output(out_dir: str | Path) -> None:
    """Fail now, before any work, where a later ``commit`` / ``publish_engine`` into ``out_dir`` would: a file,
    a non-empty folder that is not an engine directory, an invalid manifest, a folder that cannot be replaced.
    """
    out = Path(out_dir).absolute()
    if out.exists():
        replaceable_dir(out)
    _current_base(out)
    writable_dir(out.parent)


def _carry_over(out: Path, tmp: Path, components: tuple[str, ...]) -> None:
    """Hard-link ``out``'s components other than ``components`` into the temporary folder ``tmp`` (engines
    built from the old graphs, under ``trt/``, are dropped with them from the manifest)."""
    if not (out / MANIFEST_NAME).exists():
        return
    for entry in out.iterdir():
        if entry.name in (*components, "trt", MANIFEST_NAME) or entry.name.startswith(".manifest."):
            continue
        if entry.is_dir():
            shutil.copytree(entry, tmp / entry.name, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(entry), str(tmp / entry.name))


def _swap_into(tmp: Path, out: Path, *components: str) -> None:
    """Verify the finished folder ``tmp`` (its manifest already written) and put it in place of ``out``.
    The caller holds ``out``'s lock."""
    load_manifest(tmp, verify="full")  # every listed file present with the right hash
    publish_modes(tmp)
    for component in components:
        _fsync_tree(tmp / component)
    if out.is_dir() and any(out.iterdir()):
        if not _exchange(tmp, out):
            old = staging_dir(out, "old")
            os.rename(out, old / out.name)
            os.rename(tmp, out)
            tmp = old
        shutil.rmtree(tmp, ignore_errors=True)  # now holds the previous contents
    else:
        if out.is_dir():
            out.rmdir()
        os.rename(tmp, out)


def publish_engine(staged: Path, out_dir: str | Path) -> Manifest:
    """Put the components of a finished engine directory ``staged`` (a staging folder next to ``out_dir``) into
    ``out_dir`` at once: under ``out_dir``'s lock, its other components are carried over (hard links), the
    staged components replace theirs, the merged manifest is written and verified, and the folder is swapped in
    as ``EngineDirWriter.commit`` does. For exports that write several components together (``export lens``).
    """
    out = Path(out_dir).absolute()
    new = load_manifest(staged, verify="size")
    components = tuple(new.components)
    with exclusive(out):
        base = _current_base(out)
        _carry_over(out, staged, components)
        manifest = base
        for name in components:
            manifest = manifest.replace_component(
                name,
                settings=new.components[name],
                graphs={g: spec for g, spec in new.graphs.items() if g.startswith(name + ".")},
                files=[f for f in new.files if f.path.startswith(name + "/")],
                sources=[s for s in new.sources if s.component == name],
                validation=new.validation.get(name),
            )
        save_manifest(manifest, staged)
        _swap_into(staged, out, *components)
    log.info("wrote the %s components of %s", ", ".join(components), out)
    return manifest


class EngineDirWriter:
    """Context manager that writes component ``component`` of the engine directory ``out_dir``.

    Args:
        out_dir: the engine directory (created if missing; must be empty, or an engine directory).
        component: the component written, e.g. ``"sam2"``; its files go under ``<component>/``.

    Raises (on enter, and again at ``commit`` if ``out_dir`` changed meanwhile):
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
        if out.exists():
            replaceable_dir(out)  # the exchange at commit would pull the working directory away
        base = _current_base(out)
        writable_dir(out.parent)
        remove_stale(out.parent)
        self.dir = staging_dir(out)
        (self.dir / self.component).mkdir()
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
        base: Manifest | None = None,
    ) -> Manifest:
        """The manifest ``commit`` would write now (nothing is saved): e.g. to open this component's new
        graphs from ``self.dir`` (the other components' files are carried over only at ``commit``)."""
        return (base or self._base).replace_component(
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
        """Under the output's lock: carry the other components over as they are now, write the manifest,
        verify the temporary folder and move it into place; returns the manifest."""
        out, tmp = self.out_dir, self.dir
        with exclusive(out):
            base = _current_base(out)
            _carry_over(out, tmp, (self.component,))
            manifest = self.manifest(
                settings=settings, graphs=graphs, sources=sources, validation=validation, base=base
            )
            save_manifest(manifest, tmp)
            _swap_into(tmp, out, self.component)
        self._committed = True
        log.info("wrote the %s component of %s", self.component, out)
        return manifest

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            log.info("export of %s did not finish; %s left unchanged", self.component, self.out_dir)
