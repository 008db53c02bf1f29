"""Installation and import hygiene: what students' and instructors' environments rely on."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME = {Requirement(r).name: Requirement(r) for r in PYPROJECT["project"]["dependencies"]}

# What Colab's recent runtimes carry (torch 2.6 to 2.9 with their torchvision, numpy 1.26/2.x).
COLAB = {
    "torch": ["2.6.0", "2.8.0", "2.9.0"],
    "torchvision": ["0.21.0", "0.23.0", "0.24.0"],
    "numpy": ["1.26.4", "2.0.2"],
    "matplotlib": ["3.10.0"],
    "tqdm": ["4.67.1"],
}


def test_runtime_requirements_are_ranges_that_colab_satisfies():
    assert set(RUNTIME) == set(COLAB)
    for name, versions in COLAB.items():
        spec = RUNTIME[name].specifier
        assert "==" not in str(spec), f"{name} is pinned ({spec}); use a range"
        for version in versions:
            assert spec.contains(version), f"{name} {version} (Colab) is outside {spec}"


def test_extras_pin_the_book_and_grading_tools():
    extras = {
        k: [Requirement(r) for r in v]
        for k, v in PYPROJECT["project"]["optional-dependencies"].items()
    }
    assert {"book", "grading", "dev"} <= set(extras)
    assert "jupyter-book==1.0.4.post1" in {str(r) for r in extras["book"]}
    assert "nbgrader==0.9.6" in {str(r) for r in extras["grading"]}
    assert {"pytest", "nbval", "ruff"} <= {r.name for r in extras["dev"]}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


# The benchmark compares fit with d2l's Trainer, so its training comparison alone may import d2l
# (inside a function, when the benchmark runs); it still must not borrow torchvision's models.
BASELINE_IMPORTS = {"convlab/bench/training.py": ("d2l",)}


def test_convlab_never_imports_torchvision_models_or_d2l():
    offenders = {}
    for path in sorted((ROOT / "convlab").rglob("*.py")):
        allowed = BASELINE_IMPORTS.get(path.relative_to(ROOT).as_posix(), ())
        bad = {
            name
            for name in _imports(path)
            if name.startswith(("torchvision.models", "torchvision.ops", "d2l"))
            and not name.startswith(allowed)
        }
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, f"convlab must write its models itself: {offenders}"


def test_importing_the_models_loads_no_torchvision_at_all():
    code = (
        "import sys, convlab, convlab.models, convlab.summary; "
        "[convlab.models.create(n) for n in ('lenet5',)]; "
        "print(sorted(m for m in sys.modules if m.startswith(('torchvision', 'd2l'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.slow
def test_installing_into_an_older_torch_changes_no_torch_torchvision_or_numpy(tmp_path):
    """The check Colab needs: with torch already there, pip leaves torch, torchvision, numpy alone.

    torch 2.13.0 (CPU) and torchvision 0.28.0 lie on this machine's disk; they install together but
    do not import together, so the check is pip's own plan (``--dry-run --report``).
    """
    env = tmp_path / "env"
    venv.create(env, with_pip=True)
    pip = [str(env / "bin" / "python"), "-m", "pip"]
    subprocess.run(
        [*pip, "install", "--quiet", "torch==2.13.0", "torchvision==0.28.0", "numpy<2.3"],
        check=True,
        capture_output=True,
    )
    report = tmp_path / "report.json"
    subprocess.run(
        [*pip, "install", "--dry-run", "--quiet", "--report", str(report), str(ROOT)],
        check=True,
        capture_output=True,
    )
    planned = {
        item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]
    }
    assert "convlab" in planned
    assert not planned & {"torch", "torchvision", "numpy"}, sorted(planned)
