"""EngineDirWriter: temp folder, swap into place, other components kept, nothing half-written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from sam2_testutil import CONFIG, REASONER_FILE, make_reasoner_dir, tree_digest

from segzero_edge.errors import ExportError, SegZeroError
from segzero_edge.export.engine_dir import EngineDirWriter
from segzero_edge.manifest import load_manifest


def _write(out, payload: bytes, *, extra: str | None = None):
    with EngineDirWriter(out, "sam2") as w:
        w.path("sam2/a.bin").write_bytes(payload)
        if extra:
            w.path(extra).write_bytes(b"x")
        return w.commit(settings={"config": "c"}, graphs={}, validation={"ok": True})


def test_new_directory(tmp_path):
    out = tmp_path / "new" / "engine"
    m = _write(out, b"one")
    assert (out / "sam2/a.bin").read_bytes() == b"one"
    assert load_manifest(out).files == m.files and m.validation["sam2"]["ok"] is True
    assert sorted(p.name for p in out.parent.iterdir()) == ["engine"]  # no temporary folder left


def test_existing_engine_dir_keeps_other_component_and_drops_stale_files(tmp_path):
    out = make_reasoner_dir(tmp_path / "engine")
    _write(out, b"one", extra="sam2/stale.bin")
    m = _write(out, b"two")
    assert (out / REASONER_FILE).exists() and m.has_component("reasoner")
    assert [f.path for f in m.files] == [REASONER_FILE, "sam2/a.bin"]
    assert not (out / "sam2/stale.bin").exists()
    assert (out / "sam2/a.bin").read_bytes() == b"two"
    load_manifest(out)  # every file matches its hash
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine"]


def test_exception_before_commit_leaves_directory_untouched(tmp_path):
    out = make_reasoner_dir(tmp_path / "engine")
    _write(out, b"one")
    before = tree_digest(out)
    with pytest.raises(OSError, match="disk full"), EngineDirWriter(out, "sam2") as w:
        w.path("sam2/a.bin").write_bytes(b"half")
        raise OSError(28, "disk full")  # what a failing write raises
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine"]


def test_refuses_foreign_directory_and_paths_outside_component(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(ExportError, match="not an engine directory"), EngineDirWriter(foreign, "sam2"):
        pass
    assert (foreign / "cat.jpg").read_bytes() == b"meow"
    with EngineDirWriter(tmp_path / "e", "sam2") as w, pytest.raises(ValueError, match="not inside"):
        w.path("reasoner/x.bin")
    assert not (tmp_path / "e").exists()


def test_folders_of_killed_writers_are_removed(tmp_path):
    out = make_reasoner_dir(tmp_path / "engine")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".engine.partial-{dead.stdout.strip()}-abc123"
    (stale / "sam2").mkdir(parents=True)
    live = tmp_path / f".engine.partial-{os.getpid()}-def456"  # this process: maybe another export
    live.mkdir()
    _write(out, b"one")
    assert not stale.exists() and live.exists()


_CONCURRENT_WRITER = """
import sys, time
from pathlib import Path
from segzero_edge.export.engine_dir import EngineDirWriter
out, component, ready, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
with EngineDirWriter(out, component) as w:
    w.path(f"{component}/weights.bin").write_bytes(component.encode() * 1000)
    ready.touch()
    while not go.exists():
        time.sleep(0.01)
    w.commit(settings={"who": component}, graphs={})
"""


def test_two_exports_into_one_directory_at_once_both_land(tmp_path):
    """Each writer started from the same (empty) directory; the one that commits second still keeps the
    first one's component, because commit re-reads the directory under the lock."""
    out = tmp_path / "engine"
    go = tmp_path / "go"
    procs = []
    for component in ("reasoner", "sam2"):
        ready = tmp_path / f"{component}.ready"
        cmd = [sys.executable, "-c", _CONCURRENT_WRITER, str(out), component, str(ready), str(go)]
        procs.append((subprocess.Popen(cmd), ready))
    deadline = time.time() + 120
    while not all(r.exists() for _, r in procs) and time.time() < deadline:
        time.sleep(0.05)
    go.touch()
    assert [p.wait(timeout=120) for p, _ in procs] == [0, 0]
    m = load_manifest(out)
    assert m.has_component("reasoner") and m.has_component("sam2")
    assert (out / "reasoner/weights.bin").read_bytes() == b"reasoner" * 1000
    assert (out / "sam2/weights.bin").read_bytes() == b"sam2" * 1000
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging, no lock


def test_published_engine_is_readable_by_other_accounts(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "engine"
        _write(out, b"one")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o755
    assert (out / "sam2").stat().st_mode & 0o777 == 0o755
    assert (out / "manifest.json").stat().st_mode & 0o777 == 0o644
    assert (out / "sam2/a.bin").stat().st_mode & 0o777 == 0o644


def test_export_killed_with_sigterm_leaves_nothing_behind(tmp_path, sam2_checkpoint):
    """A complete export first (from a relative checkpoint path), then one stopped by SIGTERM halfway: the
    engine is as it was, and no staging folder is left."""
    import signal

    shutil.copy(sam2_checkpoint, tmp_path / "sam2.pt")
    args = ["export", "sam2", "--checkpoint", "sam2.pt", "--config", CONFIG, "--out", "engine"]
    cli = [sys.executable, "-m", "segzero_edge"]
    done = subprocess.run(
        [*cli, *args, "--validation-images", "1", "--no-tracker"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    engine = tmp_path / "engine"
    src = load_manifest(engine).sources[0]
    assert src.path == str(tmp_path / "sam2.pt")  # absolute: found from any working directory
    before = tree_digest(engine)
    proc = subprocess.Popen([*cli, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list(tmp_path.glob(".engine.partial-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert tree_digest(engine) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_engine_directory_that_is_the_working_directory_is_not_swapped_away(tmp_path, monkeypatch):
    out = make_reasoner_dir(tmp_path / "engine")
    monkeypatch.chdir(out)
    with pytest.raises(SegZeroError, match="working directory"), EngineDirWriter(".", "sam2"):
        pass
    assert load_manifest(out).has_component("reasoner")
