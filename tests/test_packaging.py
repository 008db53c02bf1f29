"""Installation and import hygiene: what students' and instructors' environments rely on."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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
    "scikit-learn": ["1.6.1"],
}


def test_runtime_requirements_are_ranges_that_colab_satisfies():
    assert set(RUNTIME) == set(COLAB)
    for name, versions in COLAB.items():
        spec = RUNTIME[name].specifier
        assert "==" not in str(spec), f"{name} is pinned ({spec}); use a range"
        for version in versions:
            assert spec.contains(version), f"{name} {version} (Colab) is outside {spec}"


def _makefile_pair(name: str) -> dict[str, str]:
    line = next(
        line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith(name)
    )
    pins = [Requirement(item) for item in line.split(":=", 1)[1].split()]
    return {r.name: str(r.specifier).removeprefix("==") for r in pins if "==" in str(r.specifier)}


def test_the_declared_torch_range_is_the_tested_one():
    """The compatibility suite's pairs are the ends of the range: nothing untested is admitted."""
    oldest, newest = _makefile_pair("COMPAT_OLDEST"), _makefile_pair("COMPAT_NEWEST")
    for name in ("torch", "torchvision"):
        spec = RUNTIME[name].specifier
        assert spec.contains(oldest[name]) and spec.contains(newest[name]), (name, spec)
        lower = next(s.version for s in spec if s.operator == ">=")
        assert oldest[name].startswith(lower), f"{name}'s lower bound {lower} is not tested"
        upper = next(s.version for s in spec if s.operator == "<")
        major, minor = (int(part) for part in newest[name].split(".")[:2])
        assert upper == f"{major}.{minor + 1}", f"{name} admits releases after {newest[name]}"


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


def _closure(names: list[str]) -> list[importlib.metadata.Distribution]:
    """These distributions of this environment and everything they require, recursively."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional requirement this environment does not have
        found[name] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(found.values())


def _lend(names: list[str], folder: Path) -> None:
    """Make ``folder`` hold these distributions (links to this environment's copies)."""
    folder.mkdir()
    for dist in _closure(names):
        for file in dist.files or []:
            top = file.parts[0]
            if top.endswith(".pth") or top in ("..", "__pycache__") or "/bin/" in str(file):
                continue
            source = Path(dist.locate_file(top))
            if source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source)


QUICK_LAB = """
import sys
from convlab import labs

lab = labs.start("lab3_batchnorm")
model, data, _ = labs.reference_start("lab3_batchnorm", quick=True, seed=0)
lab.train(model, progress=False, plot=False)
low, high = lab.thresholds()
points = lab.accuracy_points(model, 3, low, high)
assert points == 3, points
lab.hand_in(model, notebook=sys.argv[1])
import torch, sklearn
print("TORCH_FROM", torch.__file__)
"""


@pytest.mark.slow
def test_the_install_cell_alone_sets_up_a_quick_lab_beside_the_students_torch(tmp_path):
    """A clean environment (no system site packages) that has torch, torchvision and numpy, as
    Colab has: the notebooks' install cell, pointed at a wheel of this repository instead of the
    public one, installs convlab without touching torch, and a quick-mode lab then runs."""
    env = tmp_path / "env"
    venv.create(env, with_pip=True, system_site_packages=False)
    python = str(env / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    outside = tmp_path / "students-torch"
    _lend(["torch", "torchvision", "numpy"], outside)
    (Path(site) / "students_torch.pth").write_text(f"{outside}\n")
    source = tmp_path / "source"  # a copy: building in the repository would write into it
    shutil.copytree(
        ROOT / "convlab", source / "convlab", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("convlab-*.whl")
    notebook = json.loads((ROOT / "labs" / "lab3_batchnorm" / "lab3_batchnorm.ipynb").read_text())
    cell = next(
        "".join(c["source"])
        for c in notebook["cells"]
        if "install-convlab" in c["metadata"].get("tags", [])
    )
    (line,) = [line.strip() for line in cell.splitlines() if line.strip().startswith("%pip ")]
    repository = re.search(r'"convlab @ (git\+\S+)"', line).group(1)
    arguments = shlex.split(line.removeprefix("%pip ").replace(repository, wheel.as_uri()))
    installed = subprocess.run(
        [python, "-m", "pip", *arguments], capture_output=True, text=True, timeout=900
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    own = {p.name.split("-")[0].lower() for p in Path(site).glob("*.dist-info")}
    assert "convlab" in own and "scikit_learn" in own
    assert not own & {"torch", "torchvision", "numpy"}, sorted(own)
    ran = subprocess.run(
        [python, "-c", QUICK_LAB, str(ROOT / "labs" / "lab3_batchnorm" / "lab3_batchnorm.ipynb")],
        cwd=tmp_path,
        env={**os.environ, "CONVLAB_QUICK": "1", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"TORCH_FROM {outside}" in ran.stdout, ran.stdout
    assert "3 of 3 points" in ran.stdout and (tmp_path / "lab3_batchnorm.zip").exists()
