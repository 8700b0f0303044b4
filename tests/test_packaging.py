"""The wheel: what it installs, and that the bare runtime needs no torch."""

import json
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
    for sub in (
        "segzero_edge/export/__init__.py",
        "segzero_edge/training/__init__.py",
        "segzero_edge/reference/__init__.py",
        "segzero_edge/world/__init__.py",
        "segzero_edge/world/assets/reasoner/model.safetensors",
        "segzero_edge/world/assets/reasoner_multi/model.safetensors",
        "segzero_edge/world/assets/sam2_tiny.pt",
        "segzero_edge/world/assets/demo_scene.png",
        "segzero_edge/world/recipes/world_reasoner.yaml",
        "segzero_edge/world/recipes/world_reasoner_multi.yaml",
        "segzero_edge/manifest.py",
    ):
        assert sub in names, sub
    assert any(n.startswith("segzero_edge/_native") and n.endswith(".so") for n in names)
    assert not any("__pycache__" in n for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "segzero-edge = segzero_edge.cli:main" in text
    assert "torch = segzero_edge.reference.plugin:TORCH" in text and "demo = segzero_edge.world.demo:COMMAND" in text


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


@pytest.mark.slow
def test_demo_runs_from_the_installed_wheel(wheel, tmp_path):
    """``pip install`` of the built wheel into a fresh venv, then ``segzero-edge demo``: the world's models and
    scene come from the installed package, not from this checkout. The heavy dependencies (torch, sam2, ...)
    are this test environment's, reached through a path file; segzero_edge itself only from the wheel."""
    import sysconfig

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)]
    subprocess.run(install, check=True, timeout=900, env=_pip_env())
    where = subprocess.run(
        [str(py), "-c", "import segzero_edge.world as w; print(w.ASSETS)"], capture_output=True, text=True, cwd=tmp_path
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(site) and not Path(where.stdout.strip()).is_relative_to(ROOT)
    run = tmp_path / "run"
    run.mkdir()
    demo = subprocess.run(
        [str(env_dir / "bin" / "segzero-edge"), "demo", "--work-dir", "work", "--out", "out"],
        capture_output=True,
        text=True,
        cwd=run,
        timeout=1200,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-3000:]
    assert "box       : [68, 236, 160, 338]" in demo.stdout, demo.stdout  # the shipped models' answer
    assert (run / "out" / "demo.overlay.png").is_file() and (run / "out" / "demo.segzero.json").is_file()
    # The instruction tracked through the scene in motion: a 30-frame animation, scored against the truth.
    from PIL import Image

    assert "tracked   : " in demo.stdout and "30 frames, J " in demo.stdout, demo.stdout
    with Image.open(run / "out" / "demo_track.gif") as gif:
        assert gif.n_frames == 30 and gif.size == (448, 448)
    # the multi-object reasoner's answer to the scene's multi-object instruction, one record per object
    multi = json.loads((run / "out" / "demo_multi.segzero.json").read_text())
    assert multi["text"] == "all the red shapes" and len(multi["objects"]) >= 1, multi
    outputs = sorted(p.name for p in (run / "out").iterdir())
    assert outputs == [
        "demo.overlay.png",
        "demo.segzero.json",
        "demo_multi.overlay.png",
        "demo_multi.segzero.json",
        "demo_track.gif",
    ]
    assert sorted(p.name for p in run.iterdir()) == ["out", "work"]  # nothing written elsewhere
