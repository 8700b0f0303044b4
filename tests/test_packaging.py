"""The wheel: what it installs, and that the bare runtime needs no torch."""

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)]
    subprocess.run(cmd, check=True, timeout=900, env=_pip_env())
    (whl,) = out.glob("segzero_edge-*.whl")
    return whl


def _pip_env():
    import os

    return {**os.environ, "PIP_CONSTRAINT": str(ROOT / "constraints.txt")}


@pytest.mark.slow
def test_wheel_layout(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"segzero_edge"}, f"the wheel must install only segzero_edge/, found {sorted(tops)}"
    for sub in ("segzero_edge/export/__init__.py", "segzero_edge/training/__init__.py", "segzero_edge/manifest.py"):
        assert sub in names
    assert any(n.startswith("segzero_edge/_native") and n.endswith(".so") for n in names)
    assert not any("__pycache__" in n for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "segzero-edge = segzero_edge.cli:main" in text


@pytest.mark.slow
def test_fresh_venv_runtime_imports_without_torch(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=900, env=_pip_env())
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    assert (site / "segzero_edge" / "export").is_dir() and (site / "segzero_edge" / "training").is_dir()
    assert not (site / "export").exists() and not (site / "training").exists()
    code = (
        "import sys, segzero_edge\n"
        "assert 'torch' not in sys.modules\n"
        "from segzero_edge import Answer, Segmentation\n"
        "import segzero_edge._native\n"
        "print(segzero_edge.__version__)\n"
    )
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    cli = subprocess.run(
        [
            str(
                env_dir / "bin" / "segzero-edge",
            ),
            "export",
            "tiny-sam2",
            "--out",
            "x.pt",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert cli.returncode == 3 and "segzero-edge[export]" in cli.stderr, cli.stderr
