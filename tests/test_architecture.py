"""The import rules of ARCHITECTURE.md, read from the source with ``ast``.

The library (``convlab`` outside the three packages below) never imports the labs, the checkers
or the grader; the checkers never import the labs or the grader; the labs never import the
grader; nothing but the grader imports nbgrader or Jupyter. Every import counts, those inside
functions included, and relative imports are resolved to the module they name.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "convlab"
# the grader's own modules: the package and the two commands kept for their names
GRADER = ("convlab.grading", "convlab.grade", "convlab.autograde")
JUPYTER = ("nbgrader", "nbformat", "nbclient", "nbconvert", "jupyter_client", "ipykernel")
# part -> what it must never import
FORBIDDEN = {
    "library": ("convlab.labs", "convlab.check", *GRADER, *JUPYTER),
    "check": ("convlab.labs", *GRADER, *JUPYTER),
    "labs": (*GRADER, *JUPYTER),
    "grading": (),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str:
    if module.startswith(GRADER):
        return "grading"
    for part in ("labs", "check"):
        if module == f"convlab.{part}" or module.startswith(f"convlab.{part}."):
            return part
    return "library"


def imported(path: Path, root: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (``from a import b`` gives ``a`` and ``a.b``), with lines."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def violations(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        part = part_of(module_name(path, root))
        for line, name in imported(path, root):
            for banned in FORBIDDEN[part]:
                if name == banned or name.startswith(banned + "."):
                    found.append(f"{path.relative_to(root.parent)}:{line}: {part} imports {name}")
    return found


def test_every_import_in_convlab_follows_the_architecture():
    assert violations() == []


def test_the_rules_see_imports_inside_functions_and_relative_ones(tmp_path):
    fake = tmp_path / "convlab"
    (fake / "labs").mkdir(parents=True)
    (fake / "check").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "labs" / "__init__.py").write_text("from ..grading import run\n")
    (fake / "check" / "__init__.py").write_text("def f():\n    import convlab.labs.session\n")
    (fake / "train.py").write_text(
        "def fit():\n    from convlab import labs\n    from . import check\n    import nbgrader\n"
    )
    assert violations(fake) == [
        "convlab/check/__init__.py:2: check imports convlab.labs.session",
        "convlab/labs/__init__.py:1: labs imports convlab.grading",
        "convlab/labs/__init__.py:1: labs imports convlab.grading.run",
        "convlab/train.py:2: library imports convlab.labs",
        "convlab/train.py:3: library imports convlab.check",
        "convlab/train.py:4: library imports nbgrader",
    ]


def test_no_module_is_longer_than_a_reader_can_hold():
    limit = 1000
    long = {
        str(path.relative_to(PACKAGE.parent)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > limit
    }
    assert long == {}, f"split these modules (lines): {long}"
