"""The tamper scan: what an answer cell reaches into that answers never need.

nbgrader runs a whole notebook in one kernel, so an answer cell can rewrite the cells after it
(input transformers), hide their errors (traceback hooks) or replace the checkers; checkers
inside the kernel cannot stop that, only reading the code first can. A finding does not stop
grading: the submission is graded, then zeroed and marked for a person to review.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

from convlab.grading.preflight import nbgrader_cells

__all__ = ["scan_for_tampering", "tampering_findings"]

# What code in a student's cell may not touch: the IPython shell and its hooks, the tracebacks,
# the interpreter's import and frame machinery, and the checkers.
_FORBIDDEN_NAMES = {
    "get_ipython": "uses the IPython shell (get_ipython)",
    "IPython": "imports IPython",
    "InteractiveShell": "uses IPython's shell class",
    "__builtins__": "changes Python's builtins",
    "builtins": "changes Python's builtins",
    "ctypes": "uses ctypes",
    "gc": "walks the garbage collector's objects",
    "inspect": "inspects the running frames",
    "importlib": "reloads or replaces modules",
    "sys": None,  # only some attributes of sys, below
    "exec": "runs code built at run time (exec)",
    "eval": "runs code built at run time (eval)",
    "compile": "compiles code at run time",
    "__import__": "imports through __import__",
    "globals": "rewrites the notebook's namespace (globals())",
    "setattr": "sets attributes by name (setattr)",
    "delattr": "deletes attributes by name (delattr)",
}
_FORBIDDEN_ATTRIBUTES = {
    "input_transformers_cleanup": "rewrites later cells (input transformers)",
    "input_transformers_post": "rewrites later cells (input transformers)",
    "input_transformers": "rewrites later cells (input transformers)",
    "events": "registers IPython event hooks",
    "pre_run_cell": "registers a pre_run_cell hook",
    "post_run_cell": "registers a post_run_cell hook",
    "showtraceback": "replaces traceback display",
    "_showtraceback": "replaces traceback display",
    "set_custom_exc": "replaces traceback display",
    "excepthook": "replaces the exception hook",
    "modules": None,  # sys.modules, below
    "settrace": "installs a tracer",
    "setprofile": "installs a profiler",
    "_getframe": "reads the interpreter's frames",
    "f_globals": "reads the interpreter's frames",
    "f_locals": "reads the interpreter's frames",
    "__code__": "rewrites a function's code",
    "__class__": "changes an object's class",
}
# modules whose attributes an answer may read but never assign
_PROTECTED_MODULES = {"torch", "nn", "F", "np", "numpy", "convlab", "check", "reference", "labs"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def scan_for_tampering(code: str, protected: set[str], where: str) -> list[str]:
    """Findings in one cell of a student's code: what it touches that answers never need.

    Args:
        code: the cell's source.
        protected: names the locked set-up cell defines (checkers, references, ``lab``): an
            answer that rebinds them is tampering.
        where: the cell's name, for the findings.
    """
    findings = []
    lines = code.splitlines()
    python = "\n".join("pass" if line.lstrip().startswith(("%", "!")) else line for line in lines)
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith(("%", "!")):
            findings.append(
                f"{where}, line {number}: IPython magic or shell command: {line.strip()}"
            )
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return findings  # it cannot run either; the tests it breaks lose their points
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        at = f"{where}, line {line}"
        if isinstance(node, ast.Name) and _FORBIDDEN_NAMES.get(node.id):
            findings.append(f"{at}: {_FORBIDDEN_NAMES[node.id]}")
        elif isinstance(node, ast.Attribute):
            name = _dotted(node)
            if node.attr == "modules" and name.startswith("sys."):
                findings.append(f"{at}: changes the loaded modules (sys.modules)")
            elif _FORBIDDEN_ATTRIBUTES.get(node.attr):
                findings.append(f"{at}: {_FORBIDDEN_ATTRIBUTES[node.attr]} ({name})")
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                root = name.split(".")[0]
                if root in _PROTECTED_MODULES or root in protected:
                    findings.append(f"{at}: assigns {name} (library or checker code)")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            for alias in node.names:
                full = f"{module}.{alias.name}" if module else alias.name
                top = full.split(".")[0]
                if top in {"IPython", "ctypes", "gc", "inspect", "importlib", "builtins"}:
                    findings.append(f"{at}: imports {full}")
    for node in _module_level(tree.body):
        at = f"{where}, line {node.lineno}"
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name) and leaf.id in protected:
                        findings.append(f"{at}: rebinds {leaf.id}, which the set-up cell defines")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name in protected:
                findings.append(f"{at}: redefines {node.name}, which the set-up cell defines")
        elif isinstance(node, (ast.For, ast.With)):
            target = node.target if isinstance(node, ast.For) else None
            names = [target] if target else [i.optional_vars for i in node.items]
            for leaf in (n for t in names if t for n in ast.walk(t)):
                if isinstance(leaf, ast.Name) and leaf.id in protected:
                    findings.append(f"{at}: rebinds {leaf.id}, which the set-up cell defines")
    for node in ast.walk(tree):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                if name in protected:
                    findings.append(f"{where}, line {node.lineno}: rebinds {name} through global")
    return sorted(set(findings))


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run at the notebook's top level (not inside a function or class)."""
    for node in body:
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for name in ("body", "orelse", "finalbody"):
            yield from _module_level(getattr(node, name, []))
        for handler in getattr(node, "handlers", []):
            yield from _module_level(handler.body)


def _defined_names(code: str) -> set[str]:
    """Names a (locked) cell binds: imports, assignments, definitions."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def tampering_findings(submitted: Any, release: Any) -> list[str]:
    """Tampering findings in the cells a student may write (answers and their own cells)."""
    locked = {
        grade_id
        for grade_id, [cell] in nbgrader_cells(release).items()
        if cell.metadata["nbgrader"].get("grade") or cell.metadata["nbgrader"].get("locked")
    }
    protected = set()
    for cells in nbgrader_cells(release).values():
        meta = cells[0].metadata["nbgrader"]
        if meta.get("locked") and not meta.get("grade") and cells[0].cell_type == "code":
            protected |= _defined_names(cells[0].source)  # the set-up cell's names
    protected -= {"__future__"}
    findings = []
    for index, cell in enumerate(submitted.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.get("metadata", {})
        grade_id = meta.get("nbgrader", {}).get("grade_id")
        if grade_id in locked or "install-convlab" in meta.get("tags", []):
            continue  # nbgrader puts the instructor's version back; the install cell is ours
        findings += scan_for_tampering(cell.source, protected, grade_id or f"cell {index + 1}")
    return findings
