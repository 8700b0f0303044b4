"""Import rules of DESIGN.md §2, checked on the source tree (static) and in a fresh interpreter (dynamic).

Packages (source folder -> installed name) and what each may import:

* runtime core ``segzero_edge/`` -> ``segzero_edge``: numpy, pillow, tokenizers, onnxruntime/TensorRT (heavy
  ML frameworks only inside functions). Never the torch side, export, training or the world, not even
  lazily: backends outside the core are found by entry point (``segzero_edge.plugins``).
* torch side ``reference/`` -> ``segzero_edge.reference``: the runtime core, torch, transformers, sam2.
* ``export/`` -> ``segzero_edge.export`` and ``training/`` -> ``segzero_edge.training``: the runtime core and
  the torch side; never each other.
* the example ``world/`` -> ``segzero_edge.world``: anything; nothing above imports it.

No rule is dodged by a subprocess or a string import (``test_no_rule_is_dodged_by_a_subprocess_or_a_string_import``).
"""

from __future__ import annotations

import ast
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> installed package name
PACKAGES = {
    "segzero_edge": "segzero_edge",
    "reference": "segzero_edge.reference",
    "export": "segzero_edge.export",
    "training": "segzero_edge.training",
    "world": "segzero_edge.world",
}
HEAVY = {
    "torch",
    "transformers",
    "trl",
    "accelerate",
    "datasets",
    "sam2",
    "onnx",
    "onnxscript",
    "optimum",
    "vllm",
    "deepspeed",
    "torchvision",
}
#: folder -> the other folders it must never import
FORBIDDEN = {
    "segzero_edge": {"reference", "export", "training", "world"},
    "reference": {"export", "training", "world"},
    "export": {"training", "world"},
    "training": {"export", "world"},
    "world": set(),
}


def _modules():
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [] if rel.parts == ("__init__",) else list(rel.parts)
            if parts and parts[-1] == "__init__":
                parts = parts[:-1]
                is_pkg = True
            else:
                is_pkg = path.name == "__init__.py"
            name = ".".join([package, *parts])
            yield folder, name, is_pkg, path


def _imports(name: str, is_pkg: bool, tree: ast.AST):
    """(absolute module, lineno, at_module_level) for every import in the tree."""
    package = name if is_pkg else name.rpartition(".")[0]
    function_nodes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, function_nodes)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child.lineno, not in_function
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    mod = ".".join([*base, child.module] if child.module else base)
                else:
                    mod = child.module or ""
                yield mod, child.lineno, not in_function
                for alias in child.names:  # `from . import training` imports a submodule
                    yield f"{mod}.{alias.name}", child.lineno, not in_function
            yield from visit(child, inner)

    yield from visit(tree, False)


def _under(mod: str, package: str) -> bool:
    return mod == package or mod.startswith(package + ".")


def _folder_of(mod: str) -> str | None:
    """The source folder a module belongs to (None: not ours)."""
    for folder, package in sorted(PACKAGES.items(), key=lambda kv: -len(kv[1])):
        if _under(mod, package):
            return folder
    if mod.split(".")[0] in ("export", "training"):  # a top-level name the wheel must never install
        return mod.split(".")[0]
    return None


def _problems(modules) -> list[str]:
    """Rule violations in ``modules``: (folder, module name, is_package, label, source text)."""
    problems: dict[tuple[str, int], str] = {}  # one report per import statement
    for folder, name, is_pkg, label, source in modules:
        for mod, line, top_level in _imports(name, is_pkg, ast.parse(source)):
            where = f"{label}:{line} imports {mod}"
            target = _folder_of(mod)
            if target in FORBIDDEN[folder]:
                problems.setdefault((label, line), f"{where}: {folder}/ must not import {target}/")
            elif folder == "segzero_edge" and top_level and mod.split(".")[0] in HEAVY:
                problems.setdefault((label, line), f"{where} at module level: import it lazily in the function")
    return list(problems.values())


def test_static_import_rules():
    modules = [(f, n, pkg, str(p.relative_to(ROOT)), p.read_text()) for f, n, pkg, p in _modules()]
    assert {f for f, *_ in modules} == set(PACKAGES), "the walk missed a package: is the layout right?"
    problems = _problems(modules)
    assert not problems, "\n".join(problems)


#: ``segzero-edge`` subcommands -> the package that implements them
SUBCOMMAND_PACKAGE = {"export": "export", "train": "training", "demo": "world"}


def _crossings(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, target folder) of every run of another package of ours by name: a command list
    (``[sys.executable, "-m", "segzero_edge", "export", ...]``, ``["segzero-edge", "train", ...]``,
    ``["-m", "segzero_edge.training.x"]``) or ``importlib.import_module("segzero_edge.x")``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [e.value if isinstance(e, ast.Constant) and isinstance(e.value, str) else None for e in node.elts]
            for i, item in enumerate(items):
                nxt = items[i + 1] if i + 1 < len(items) else None
                if item == "-m" and nxt and nxt.startswith("segzero_edge."):
                    out.append((node.lineno, _folder_of(nxt)))
                elif (item == "segzero-edge" or (item == "segzero_edge" and i and items[i - 1] == "-m")) and nxt:
                    out.append((node.lineno, SUBCOMMAND_PACKAGE.get(nxt)))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in ("import_module", "__import__") and str(node.args[0].value).startswith("segzero_edge."):
                out.append((node.lineno, _folder_of(str(node.args[0].value))))
    return [(line, target) for line, target in out if target is not None]


def _crossing_problems(modules) -> list[str]:
    return [
        f"{label}:{line} runs {target}/ by name: {folder}/ must not use it"
        for folder, _, _, label, source in modules
        for line, target in _crossings(ast.parse(source))
        if target in FORBIDDEN[folder]
    ]


def test_no_rule_is_dodged_by_a_subprocess_or_a_string_import():
    """No package runs another it may not import (``python -m segzero_edge export ...``, ``segzero-edge train``,
    ``-m segzero_edge.world``) or imports it by a string; the world example may run the others, and the
    backend seam is an entry point, not a string import."""
    modules = [(f, n, pkg, str(p.relative_to(ROOT)), p.read_text()) for f, n, pkg, p in _modules()]
    problems = _crossing_problems(modules)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("folder", "source"),
    [
        ("training", 'cmd = [sys.executable, "-m", "segzero_edge", "export", "tiny-reasoner", "--out", d]'),
        ("export", 'subprocess.run(["segzero-edge", "train", "seg_zero_3b"])'),
        ("segzero_edge", 'cmd = [py, "-m", "segzero_edge.world.sam2_train"]'),
        ("segzero_edge", 'importlib.import_module("segzero_edge.reference.plugin")'),
    ],
)
def test_crossing_checker_can_fail(folder, source):
    assert len(_crossing_problems([(folder, f"{PACKAGES[folder]}.x", False, "fake.py", source)])) == 1


def test_the_world_may_run_the_others():
    source = 'cmds = [[py, "-m", "segzero_edge.world.sam2_train"], [py, "-m", "segzero_edge", "export", "sam2"]]'
    assert _crossing_problems([("world", "segzero_edge.world.retrain", False, "f.py", source)]) == []


def test_runtime_modules_import_without_torch_or_the_torch_side():
    """Import every runtime-core module in a fresh interpreter; no heavy framework and no other package of
    ours may come along."""
    runtime = [n for f, n, _, p in _modules() if f == "segzero_edge" and p.name != "__main__.py"]
    others = tuple(PACKAGES[f] for f in FORBIDDEN["segzero_edge"])
    code = (
        "import importlib, sys\n"
        f"for m in {runtime!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(HEAVY)!r}"
        f" or m.startswith({others!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing the runtime loaded: {out.stdout.strip()}"


def test_runtime_import_costs_under_half_a_second_of_cpu():
    """``import segzero_edge`` in a fresh interpreter: under 0.5 s of CPU time (user + system; CPU time, not
    wall time, so a loaded machine does not fail it). Measured 0.25 s here (numpy is most of it)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", "import segzero_edge"], check=True, timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 0.5, f"import segzero_edge took {cpu:.2f} s of CPU"


@pytest.mark.parametrize(
    ("folder", "name", "source", "expected"),
    [
        ("segzero_edge", "segzero_edge.sam2.ort", "import torch", "at module level"),
        ("segzero_edge", "segzero_edge.cli.x", "def f():\n    from segzero_edge.export import x", "export/"),
        ("segzero_edge", "segzero_edge.x", "def f():\n    from ..training import grpo", "must not import training/"),
        ("segzero_edge", "segzero_edge.x", "def f():\n    from .reference import qwen", "must not import reference/"),
        ("segzero_edge", "segzero_edge.x", "from segzero_edge.world import demo", "must not import world/"),
        ("reference", "segzero_edge.reference.x", "from segzero_edge.export import cli", "must not import export/"),
        ("export", "segzero_edge.export.sam2", "from ..training import rewards", "must not import training/"),
        ("training", "segzero_edge.training.grpo", "import segzero_edge.export.cli", "must not import export/"),
        ("training", "segzero_edge.training.grpo", "from segzero_edge.world import x", "must not import world/"),
    ],
)
def test_checker_catches_violations(folder, name, source, expected):
    """The static check itself must be able to fail."""
    problems = _problems([(folder, name, False, "fake.py", source)])
    assert len(problems) == 1 and expected in problems[0]


@pytest.mark.parametrize(
    ("folder", "source"),
    [
        ("segzero_edge", "def f():\n    import torch"),
        ("reference", "import torch\nfrom segzero_edge.sam2 import contract"),
        ("export", "from segzero_edge.reference import qwen"),
        ("training", "from segzero_edge.reference.qwen import load_qwen_processor"),
        ("world", "from segzero_edge.export import cli\nfrom segzero_edge.training import grpo"),
    ],
)
def test_allowed_imports_pass(folder, source):
    assert _problems([(folder, f"{PACKAGES[folder]}.x", False, "f.py", source)]) == []
