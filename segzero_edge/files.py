"""How segzero-edge writes files: the rules every command that writes follows, in one place.

* **Only where the user pointed.** ``output_dir`` checks a folder the user named (``--out``) before any
  work starts: not a file, not the input itself, creatable and writable. ``replaceable_dir`` refuses to
  replace the working directory, one of its ancestors, the home folder or a filesystem root.
* **Readable by others as the umask allows.** ``tempfile.mkdtemp``/``mkstemp`` create 0700/0600 entries;
  everything we publish gets ``0o777 & ~umask`` (folders) and ``0o666 & ~umask`` (files), the modes
  ``mkdir`` and ``open`` would have given, so a robot's service account can read an engine another user
  exported (``publish_modes``).
* **One writer at a time.** ``exclusive(path)`` holds an ``flock`` on ``.<name>.lock`` next to ``path``
  for as long as a writer changes ``path``; a second writer waits. The lock file is removed on release.
* **Nothing left behind.** Staging folders are named ``.<name>.<kind>-<pid>-<random>`` (``staging_dir``);
  a process killed with SIGKILL cannot remove its own, so every writer removes those of dead processes in
  the folder it writes to (``remove_stale``), whatever their name.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError

log = logging.getLogger(__name__)

#: The kinds of staging folder a writer creates (``.<name>.<kind>-<pid>-<random>``).
STAGING_KINDS = ("partial", "old", "tmp")
_STAGING = re.compile(r"^\..+\.(?:" + "|".join(STAGING_KINDS) + r")-(\d+)-[^/]+$")


def umask() -> int:
    """The process umask, read without changing it where Linux reports it (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # elsewhere: the only portable read is a set and restore
    os.umask(old)
    return old


def publish_modes(root: Path) -> None:
    """Give ``root`` and everything under it the modes ``mkdir``/``open`` would have given (see the module
    docstring). Symlinks are left alone."""
    mask = umask()
    dir_mode, file_mode = 0o777 & ~mask, 0o666 & ~mask
    if root.is_dir() and not root.is_symlink():
        root.chmod(dir_mode)
        for p in root.rglob("*"):
            if p.is_symlink():
                continue
            p.chmod(dir_mode if p.is_dir() else file_mode)
    elif root.is_file():
        root.chmod(file_mode)


def staging_dir(target: Path, kind: str = "partial") -> Path:
    """A new hidden folder next to ``target`` (same filesystem, so it can be renamed into place), named so
    ``remove_stale`` recognises it once this process is gone."""
    if kind not in STAGING_KINDS:
        raise ValueError(f"unknown staging kind {kind!r}")
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.{kind}-{os.getpid()}-", dir=target.parent))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(folder: Path) -> list[Path]:
    """Remove the staging folders in ``folder`` whose process is gone; returns what was removed."""
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _STAGING.match(p.name)
        if m and p.is_dir() and not p.is_symlink() and not _pid_alive(int(m.group(1))):
            log.info("removing %s, left by a writer that was killed", p)
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


@contextlib.contextmanager
def exclusive(target: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``target`` (an ``flock`` on ``.<name>.lock`` in its parent folder).

    The lock file is deleted on release; a waiter that then holds a lock on the deleted inode notices and
    locks the new file instead, so two writers never both hold the lock.
    """
    lock = target.parent / f".{target.name}.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)


def writable_dir(folder: Path, *, hint: str = "choose a folder you can write to with --out") -> Path:
    """Create ``folder`` (and its parents) if needed and check that this process can write into it.

    Raises:
        InputError: it cannot be created (e.g. below a file) or is not writable.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write to {folder}: {exc.strerror or exc}", hint=hint) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write to {folder}: permission denied", hint=hint)
    return folder


def output_dir(path: str | os.PathLike[str], *, inputs: tuple[Path, ...] = ()) -> Path:
    """Check (and create) the output folder ``path`` a user named: an absolute ``Path`` of a writable folder.

    Raises:
        InputError: ``path`` is a file (for example one of ``inputs``), cannot be created, or is not
            writable.
    """
    out = Path(path).expanduser().absolute()
    for src in inputs:
        with contextlib.suppress(OSError):
            if out.exists() and src.exists() and out.samefile(src):
                what = "the input file" if src.is_file() else f"an input of this command ({src})"
                raise InputError(f"--out {out} is {what}", hint="pass a separate folder for the results with --out")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder", hint="pass a folder for the results with --out")
    return writable_dir(out)


def writable_parent(path: str | os.PathLike[str]) -> Path:
    """Check that the file ``path`` a user named can be written (its folder exists or can be created, and is
    writable, and ``path`` is not a folder); returns it as an absolute ``Path``."""
    target = Path(path).expanduser().absolute()
    if target.is_dir():
        raise InputError(f"{target} is a folder", hint="name a file to write, e.g. latency.png")
    writable_dir(target.parent, hint="choose a path you can write to")
    if target.exists() and not os.access(target, os.W_OK):
        raise InputError(f"cannot write to {target}: permission denied", hint="choose a path you can write to")
    return target


def replaceable_dir(path: Path) -> None:
    """Refuse to replace ``path`` when that would delete the working directory, one of its ancestors, the
    home folder or a filesystem root (``--overwrite``'s safety)."""
    target = path.expanduser().absolute().resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents or target == Path.home().resolve() or target.parent == target:
        raise InputError(
            f"refusing to replace {target}: it is the working directory, one of its parents, the home folder "
            "or a filesystem root",
            hint="pass a dedicated output folder with --out",
        )
