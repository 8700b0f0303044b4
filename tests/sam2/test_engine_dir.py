"""EngineDirWriter: temp folder, swap into place, other components kept, nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sam2_testutil import REASONER_FILE, make_reasoner_dir, tree_digest

from segzero_edge.errors import ExportError
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
