"""Grade every submission of a lab with nbgrader, one at a time or in parallel, each in a box.

    python -m convlab.grade lab1_vgg                  # from the course directory
    python -m convlab.grade lab1_vgg --workers 2 --memory-gb 8 --cell-timeout 300

Built on ``nbgrader autograde``, run once per student, so that one submission can never stop
the others. Each run works on a staged copy of the submission (the submitted files are never
changed): only the lab's notebook and checkpoint are copied, so a ``torch.py`` or ``convlab.py``
handed in beside the notebook is never imported. The kernel starts under resource limits
(address space, CPU seconds, file size, processes), with a time limit per cell (nbgrader
interrupts the cell, the student loses that cell's points) and per notebook (the run is
stopped, the submission scores zero with the status ``timed out``); it runs as an
unprivileged user when ``--user`` is given (see :func:`kernel_main`). The grading process keeps
only the first megabytes of each cell's output (:mod:`convlab.autograde`).

Before grading, every notebook is read and checked: missing, unreadable, empty, handed in
under another name, test cells edited, deleted, duplicated or with edited points (nbgrader
restores them; the status says so), and code that reaches into the IPython shell, the
checkers or the test machinery (``tampering suspected``: graded, then set to zero for a
person to review, every grade marked as needing manual grading). A checkpoint must load as
plain weights (``torch.load(weights_only=True)``) and stay under the size cap.

The command ends with one line per student (score, status, reason), a summary line counting
each status, and exit code 0 when every submission was graded without anything to review, 1
when a person needs to look at something, 2 when grading itself could not start.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "GRADED",
    "HIDDEN_TESTS",
    "Result",
    "Settings",
    "grade",
    "kernel_main",
    "scan_for_tampering",
    "strip_feedback",
]

# statuses: the first word groups them in the summary
GRADED = "graded"
RESTORED = "graded; test cells restored"
MISSING = "missing notebook"
UNREADABLE = "unreadable notebook"
EMPTY = "empty notebook"
RENAMED = "graded; wrong file name"
TAMPERING = "tampering suspected"
TIMED_OUT = "timed out"
OUT_OF_MEMORY = "graded; out of memory in a cell"
CELL_TIMEOUT = "graded; a cell timed out"
KERNEL_DIED = "kernel died"
CHECKPOINT_REJECTED = "graded; checkpoint rejected"
FAILED = "grading failed"
NEEDS_A_PERSON = {MISSING, UNREADABLE, TAMPERING, FAILED, KERNEL_DIED, TIMED_OUT}

KERNEL_NAME = "convlab-grading"
PEAK_LINE = "convlab: peak memory of the grading process:"  # printed by convlab.autograde
GIB = 2**30


@dataclass(frozen=True)
class Settings:
    """Limits of one grading run.

    Attributes:
        cell_timeout: seconds a cell may run before nbgrader interrupts it.
        notebook_timeout: seconds a whole notebook may take (wall clock).
        memory_gb: address-space limit of the kernel, GiB (``import torch`` alone maps about
            3.3 GB, so keep it well above that).
        max_checkpoint_mb: largest checkpoint accepted, MB.
        max_file_mb: largest file the kernel may write, MB.
        max_output_mb: output the grader keeps from one cell, MB of text (the rest is dropped
            as it arrives, so a printing loop cannot fill the grading machine's memory).
        user: run the kernel as this (unprivileged) user; None keeps the grader's user.
        threads: CPU threads of each kernel (OpenMP, MKL); None shares the machine's cores
            among the workers. Kernels that each take every core slow each other down many
            times over; an ``OMP_NUM_THREADS`` set for the grader wins over both.
        protections: the protections switched on (all by default; tests switch one off to show
            the attack it stops).
    """

    cell_timeout: int = 300
    notebook_timeout: int = 1200
    memory_gb: float = 8.0
    max_checkpoint_mb: float = 200.0
    max_file_mb: float = 512.0
    max_output_mb: float = 8.0
    user: str | None = None
    threads: int | None = None
    protections: frozenset[str] = frozenset({"stage", "limits", "scan", "checkpoint"})


@dataclass
class Result:
    """One student's outcome."""

    student: str
    status: str
    score: float = 0.0
    max_score: float = 0.0
    reason: str = ""
    seconds: float = 0.0
    grader_mb: float = 0.0  # peak memory of the nbgrader process that graded it
    findings: list[str] = field(default_factory=list)

    def line(self) -> str:
        reason = f"  {self.reason}" if self.reason else ""
        return f"{self.student:<24} {self.score:6.2f} / {self.max_score:g}  {self.status}{reason}"


# ----------------------------------------------------------------------------------------------
# Reading and checking a submission before it runs


def _read_notebook(path: Path) -> tuple[Any | None, str]:
    """The notebook (nbformat 4) or None, and a reason."""
    import nbformat

    try:
        raw = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"{path.name} is not valid JSON ({error}); ask for the file again"
    if not isinstance(raw, dict) or ("cells" not in raw and "worksheets" not in raw):
        return None, f"{path.name} is JSON but not a notebook"
    try:
        notebook = nbformat.reads(json.dumps(raw), as_version=4)
    except Exception as error:  # nbformat raises several kinds for bad structure
        return None, f"{path.name} is not a readable notebook ({type(error).__name__}: {error})"
    return notebook, ""


def _nbgrader_cells(notebook: Any) -> dict[str, list[Any]]:
    cells: dict[str, list[Any]] = {}
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id:
            cells.setdefault(grade_id, []).append(cell)
    return cells


def compare_with_release(submitted: Any, release: Any) -> list[str]:
    """What the student changed in the cells they may not change (nbgrader restores them)."""
    found = []
    mine = _nbgrader_cells(submitted)
    for grade_id, [cell] in _nbgrader_cells(release).items():
        meta = cell.metadata["nbgrader"]
        if not (meta.get("grade") or meta.get("locked")):
            continue
        theirs = mine.get(grade_id, [])
        if not theirs:
            found.append(f"{grade_id} deleted")
            continue
        if len(theirs) > 1:
            found.append(f"{grade_id} duplicated")
        other = theirs[0]
        if other.cell_type != cell.cell_type:
            found.append(f"{grade_id} turned into {other.cell_type}")
        elif other.source != cell.source:
            found.append(f"{grade_id} edited")
        their_meta = other.metadata.get("nbgrader", {})
        for key in ("points", "grade", "locked", "solution", "schema_version"):
            if their_meta.get(key) != meta.get(key):
                found.append(f"{grade_id} metadata {key} changed")
    return found


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


def _restore_metadata(notebook: Any, release: Any) -> None:
    """Put the release's nbgrader metadata back on the graded and locked cells.

    nbgrader restores their sources and points itself, but stops at an edited schema version.
    """
    wanted = {
        grade_id: cell.metadata["nbgrader"] for grade_id, [cell] in _nbgrader_cells(release).items()
    }
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in wanted:
            cell.metadata["nbgrader"] = dict(wanted[grade_id])


def _deduplicate(notebook: Any) -> None:
    """Keep the first cell of each grade id (nbgrader 0.9's own deduplication then crashes)."""
    seen: set[str] = set()
    kept = []
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in seen:
            continue
        if grade_id:
            seen.add(grade_id)
        kept.append(cell)
    notebook.cells = kept


def tampering_findings(submitted: Any, release: Any) -> list[str]:
    """Tampering findings in the cells a student may write (answers and their own cells)."""
    locked = {
        grade_id
        for grade_id, [cell] in _nbgrader_cells(release).items()
        if cell.metadata["nbgrader"].get("grade") or cell.metadata["nbgrader"].get("locked")
    }
    protected = set()
    for cells in _nbgrader_cells(release).values():
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


def check_checkpoint(path: Path, max_mb: float) -> str:
    """Why a checkpoint is refused ("" when it loads as plain weights, under the size cap)."""
    import pickle

    import torch

    size = path.stat().st_size / 1e6
    if size > max_mb:
        return f"{path.name} is {size:.0f} MB, over the {max_mb:g} MB cap"
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0][:160]
        return f"{path.name} holds more than weights and was not loaded ({first})"
    except Exception as error:  # a truncated or foreign file
        return f"{path.name} cannot be read as a checkpoint ({type(error).__name__})"
    return ""


# ----------------------------------------------------------------------------------------------
# The kernel under limits


def kernel_main(argv: Sequence[str]) -> None:
    """Start an IPython kernel under resource limits, optionally as another user.

    Called as the grading kernelspec's command: ``python -m convlab.grade kernel --memory-gb 8
    --cpu-seconds 1200 [--user nobody] -f CONNECTION_FILE``. When ``--user`` is given and this
    runs as root, the connection file (mode 600, root's) is copied into a private folder owned
    by that user, the process drops to the user's uid and gid, and its home becomes that folder.
    """
    parser = argparse.ArgumentParser(prog="python -m convlab.grade kernel")
    parser.add_argument("--memory-gb", type=float, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    parser.add_argument("--file-mb", type=float, required=True)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--user", default=None)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--site", default=None, help="site-packages the kernel must import from")
    parser.add_argument("-f", dest="connection_file", required=True)
    args = parser.parse_args(argv)

    memory = int(args.memory_gb * GIB)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (args.cpu_seconds, args.cpu_seconds + 5))
    size = int(args.file_mb * 1e6)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    connection = args.connection_file
    env = dict(os.environ)
    if args.threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, str(args.threads))
    if args.user and os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(args.user)
        home = Path(tempfile.mkdtemp(prefix="convlab-kernel-"))
        os.chown(home, entry.pw_uid, entry.pw_gid)
        copied = home / Path(connection).name
        shutil.copy(connection, copied)
        os.chown(copied, entry.pw_uid, entry.pw_gid)
        connection = str(copied)
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
        env.update(HOME=str(home), MPLCONFIGDIR=str(home), TMPDIR=str(home), USER=args.user)
    command = [args.python, "-m", "ipykernel_launcher", "-f", connection]
    if args.python != sys.executable:  # a copied interpreter: its libpython is beside it
        env["LD_LIBRARY_PATH"] = str(Path(args.python).parent.parent / "lib")
    if args.site:
        # a Python outside the grader's environment: add its packages, .pth files included
        boot = (
            "import site, sys, runpy; site.addsitedir(sys.argv.pop(1)); "
            "sys.argv[0] = 'ipykernel_launcher'; runpy.run_module('ipykernel_launcher', "
            "run_name='__main__', alter_sys=True)"
        )
        command = [args.python, "-c", boot, args.site, "-f", connection]
    os.execve(command[0], command, env)


def _kernelspec(folder: Path, settings: Settings, python: str, site: str | None) -> Path:
    """A kernelspec folder whose kernel starts through :func:`kernel_main`."""
    argv = [
        sys.executable, "-m", "convlab.grade", "kernel",
        "--memory-gb", str(settings.memory_gb),
        "--cpu-seconds", str(settings.notebook_timeout),
        "--file-mb", str(settings.max_file_mb),
        "--python", python,
    ]  # fmt: skip
    if settings.threads:
        argv += ["--threads", str(settings.threads)]
    if settings.user:
        argv += ["--user", settings.user]
    if site:
        argv += ["--site", site]
    argv += ["-f", "{connection_file}"]
    spec = folder / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "convlab grading", "language": "python"})
    )
    return folder


# ----------------------------------------------------------------------------------------------
# Grading


@dataclass
class Course:
    root: Path
    lab: str
    release: Any
    db_url: str

    @property
    def notebook_name(self) -> str:
        return f"{self.lab}.ipynb"


def _course(root: Path, lab: str, db_url: str | None) -> Course:
    import nbformat

    release = root / "labs" / lab / f"{lab}.ipynb"
    if not release.exists():
        raise SystemExit(f"no release {release}: run nbgrader generate_assignment {lab} first")
    url = db_url or f"sqlite:///{(root / 'gradebook.db').resolve()}"
    return Course(root, lab, nbformat.read(release, as_version=4), url)


def _find_notebook(folder: Path, course: Course) -> tuple[Path | None, str]:
    """The submitted notebook, and a note when it was found under another name."""
    wanted = folder / course.notebook_name
    if wanted.exists():
        return wanted, ""
    others = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if len(others) == 1:
        return others[0], f"handed in as {others[0].name}, graded as {course.notebook_name}"
    return None, ""


@contextlib.contextmanager
def _stage_root() -> Iterator[Path]:
    """A private folder for one run: its parent cannot be listed, its name cannot be guessed."""
    parent = Path(tempfile.gettempdir()) / "convlab-grading"
    parent.mkdir(mode=0o711, exist_ok=True)
    os.chmod(parent, 0o711)
    stage = parent / secrets.token_hex(16)
    stage.mkdir(mode=0o755)
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _grades(course: Course, student: str) -> tuple[float, float] | None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db_url) as gradebook:
        try:
            notebook = gradebook.find_submission_notebook(course.lab, course.lab, student)
        except MissingEntry:
            return None
        return float(notebook.score), float(notebook.max_score)


def _flag_for_review(course: Course, student: str) -> None:
    """Zero every grade of a submission and mark it for manual grading (nbgrader formgrader).

    The automatic scores are zeroed, not the manual ones: nbgrader keeps a manual score through
    every later autograde, so a zero written there would outlive a clean resubmission. A score a
    person gives in the formgrader still overrides, as nbgrader intends.
    """
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as gradebook:
        notebook = gradebook.find_submission_notebook(course.lab, course.lab, student)
        for grade in notebook.grades:
            grade.auto_score = 0.0
            grade.needs_manual_grade = True
        gradebook.db.commit()


def _cell_troubles(path: Path, settings: Settings) -> list[tuple[str, str]]:
    """(status, reason) for each cell of an autograded notebook stopped by a limit."""
    import nbformat

    if not path.exists():
        return []
    found = []
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"
        for output in cell.get("outputs", []):
            text = f"{output.get('ename', '')} {output.get('evalue', '')} {output.get('text', '')}"
            if "CellTimeoutError" in text or "timed out" in text.lower():
                reason = f"{name} ran past {settings.cell_timeout} s and was interrupted"
                found.append((CELL_TIMEOUT, reason))
            elif "MemoryError" in text or "can't allocate memory" in text:
                reason = f"{name} asked for more than the {settings.memory_gb:g} GiB limit"
                found.append((OUT_OF_MEMORY, reason))
    return found


def _can_run(user: str, python: str, env: dict[str, str] | None = None) -> str:
    """Why ``user`` cannot import torch and ipykernel with ``python`` ("" when it can)."""
    probe = subprocess.run(
        ["runuser", "-u", user, "--", python, "-c", "import torch, ipykernel"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )
    if probe.returncode == 0:
        return ""
    lines = probe.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit code {probe.returncode}"


def portable_python(destination: Path) -> Path:
    """Copy this interpreter and its standard library where every user can read them.

    The grader's environment often lives under root's home (mode 700), where an unprivileged
    kernel cannot execute the interpreter. The copy (about 300 MB, made once) runs the
    environment's packages through ``--site``.

    Returns:
        The copied interpreter.
    """
    import sysconfig

    base = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = destination / "bin" / version
    if not python.exists():
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        shutil.copytree(
            stdlib,
            destination / "lib" / version,
            ignore=shutil.ignore_patterns("site-packages", "test", "idlelib", "tkinter"),
            dirs_exist_ok=True,
        )
        for library in (base / "lib").glob("libpython*"):
            shutil.copy2(library, destination / "lib" / library.name, follow_symlinks=True)
        (destination / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(sys.executable).resolve(), python)
        for folder in [destination, *destination.rglob("*")]:
            folder.chmod(
                folder.stat().st_mode | 0o555
                if folder.is_dir()
                else 0o755
                if folder == python
                else 0o644
            )
    return python


def _python_for(user: str | None) -> tuple[str, str | None]:
    """An interpreter the kernel's user can run, and the site-packages to add (or None)."""
    if not user or os.geteuid() != 0:
        return sys.executable, None
    if not _can_run(user, sys.executable):
        return sys.executable, None
    import site

    packages = next(p for p in site.getsitepackages() if p.endswith("site-packages"))
    python = portable_python(Path(tempfile.gettempdir()) / "convlab-python")
    env = dict(os.environ, LD_LIBRARY_PATH=str(python.parent.parent / "lib"))
    boot = f"import site; site.addsitedir({packages!r}); import torch, ipykernel"
    probe = subprocess.run(
        ["runuser", "-u", user, "--", str(python), "-c", boot],
        capture_output=True, text=True, env=env, cwd="/",
    )  # fmt: skip
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["no access"])[-1]
        raise SystemExit(
            f"the user {user} cannot import torch from {packages} ({why}): install the course's "
            "environment in a folder every user can read (for example `make install "
            "VENV=/opt/convlab/.venv`)"
        )
    return str(python), packages


def _protect_course(root: Path) -> list[str]:
    """Make the course's private folders unreadable to other users; what was changed."""
    changed = []
    for name in ("solutions", "submitted", "autograded", "feedback", "tests", "checkpoints",
                 "gradebook.db", "downloaded"):  # fmt: skip
        path = root / name
        if path.exists() and path.stat().st_mode & 0o077:
            path.chmod(path.stat().st_mode & ~0o077)
            changed.append(name)
    return changed


def grade_one(
    course: Course, student: str, settings: Settings, jupyter_path: Path | None
) -> Result:
    """Check, stage and autograde one student's submission."""
    import nbformat

    begin = time.perf_counter()
    result = Result(student, GRADED, max_score=_max_score(course))
    folder = course.root / "submitted" / student / course.lab
    path, renamed = _find_notebook(folder, course) if folder.is_dir() else (None, "")
    if path is None:
        result.status, result.reason = MISSING, f"no {course.notebook_name} in {folder}"
        return result
    notebook, reason = _read_notebook(path)
    if notebook is None:
        result.status, result.reason = UNREADABLE, reason
        return result
    if not any(cell.source.strip() for cell in notebook.cells):
        result.status, result.reason = EMPTY, "the notebook has no content"
        return result
    notes = [renamed] if renamed else []
    changed = compare_with_release(notebook, course.release)
    if changed:
        notes.append("restored: " + ", ".join(changed))
        _restore_metadata(notebook, course.release)
        _deduplicate(notebook)
    findings = (
        tampering_findings(notebook, course.release) if "scan" in settings.protections else []
    )
    checkpoint = folder / f"{course.lab}.pt"
    refused = ""
    if checkpoint.exists() and "checkpoint" in settings.protections:
        refused = check_checkpoint(checkpoint, settings.max_checkpoint_mb)

    with _stage_root() as stage:
        if "stage" in settings.protections:
            submitted = stage / "submitted"
            target = submitted / student / course.lab
            target.mkdir(parents=True)
            nbformat.write(notebook, target / course.notebook_name)
            if checkpoint.exists() and not refused:
                shutil.copy(checkpoint, target / checkpoint.name)
        else:  # nbgrader's own copy of everything the student handed in
            submitted = course.root / "submitted"
        autograded = stage / "autograded"
        output_mb = str(settings.max_output_mb) if "limits" in settings.protections else "inf"
        command = [
            sys.executable, "-m", "convlab.autograde", course.lab,
            "--student", student, "--force", "--output-mb", output_mb,
            f"--CourseDirectory.root={course.root.resolve()}",
            f"--CourseDirectory.submitted_directory={submitted}",
            f"--CourseDirectory.autograded_directory={autograded}",
            f"--CourseDirectory.db_url={course.db_url}",
            f"--Execute.timeout={settings.cell_timeout}",
        ]  # fmt: skip
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        if jupyter_path is not None:
            command.append(f"--Execute.kernel_name={KERNEL_NAME}")
            env["JUPYTER_PATH"] = str(jupyter_path)
        try:
            run = subprocess.run(
                command,
                cwd=course.root,
                env=env,
                capture_output=True,
                text=True,
                timeout=settings.notebook_timeout,
            )
        except subprocess.TimeoutExpired:
            result.status = TIMED_OUT
            result.reason = f"the notebook ran past {settings.notebook_timeout} s and was stopped"
            result.max_score = _max_score(course)
            result.seconds = time.perf_counter() - begin
            return result
        made = autograded / student / course.lab
        if made.exists():
            final = course.root / "autograded" / student / course.lab
            shutil.rmtree(final, ignore_errors=True)
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(made, final)
        troubles = _cell_troubles(made / course.notebook_name, settings)
    log = run.stdout + run.stderr
    logs = course.root / "grading-logs" / course.lab
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{student}.log").write_text(log)
    peak = re.search(re.escape(PEAK_LINE) + r" (\d+) MB", log)
    result.grader_mb = float(peak.group(1)) if peak else 0.0
    grades = _grades(course, student)
    result.max_score = grades[1] if grades else _max_score(course)
    result.seconds = time.perf_counter() - begin
    if run.returncode != 0 or grades is None:
        died = "DeadKernelError" in log or "Kernel died" in log or "kernel died" in log.lower()
        result.status = KERNEL_DIED if died else FAILED
        result.reason = (
            "the kernel stopped while the notebook ran (os._exit, a crash, or killed for "
            "memory); nothing was graded"
            if died
            else _last_error(log)
        )
        return result
    result.score = grades[0]
    if findings:
        _flag_for_review(course, student)
        result.status, result.findings = TAMPERING, findings
        result.score = (_grades(course, student) or (0.0, 0.0))[0]  # 0 unless graded by hand
        result.reason = findings[0] + (f" (+{len(findings) - 1} more)" if len(findings) > 1 else "")
        result.reason += f"; the tests gave {grades[0]:g} before zeroing"
        return result
    if refused:
        result.status, result.reason = CHECKPOINT_REJECTED, refused
    elif troubles:
        result.status = troubles[0][0]
        notes.insert(0, "; ".join(reason for _, reason in troubles))
    elif renamed:
        result.status = RENAMED
    elif changed:
        result.status = RESTORED
    result.reason = "; ".join(filter(None, [result.reason, *notes]))
    return result


def _grade_with_retry(
    course: Course, student: str, settings: Settings, jupyter_path: Path | None
) -> Result:
    """:func:`grade_one`, once more when nbgrader itself failed (not the student's code)."""
    result = grade_one(course, student, settings, jupyter_path)
    if result.status == FAILED:
        first = result.reason
        result = grade_one(course, student, settings, jupyter_path)
        result.reason = "; ".join(filter(None, [result.reason, f"first attempt failed: {first}"]))
    return result


def _max_score(course: Course) -> float:
    return float(
        sum(
            c.metadata["nbgrader"].get("points", 0)
            for c in course.release.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("grade")
        )
    )


def _last_error(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if "Error" in line or "error" in line]
    lines = [line for line in lines if "see the the above traceback" not in line]
    return lines[-1][:200] if lines else "nbgrader autograde failed; see grading-logs/"


def cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_workers(memory_gb: float) -> int:
    """One worker per core, as long as every kernel could use its whole memory limit at once."""
    try:
        total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    except (AttributeError, ValueError, OSError):
        return cores()
    return max(1, min(cores(), int(total_gb // (memory_gb + 1))))


def grade(
    root: Path,
    lab: str,
    *,
    students: Sequence[str] | None = None,
    workers: int = 1,
    settings: Settings | None = None,
    db_url: str | None = None,
) -> list[Result]:
    """Grade every submission of ``lab`` in the course directory ``root``; one result each."""
    settings = settings or Settings()
    course = _course(root, lab, db_url)
    if students is None:
        base = root / "submitted"
        students = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    if settings.threads is None:  # the cores shared among the kernels that run at once
        at_once = max(1, min(workers, len(students)))
        settings = replace(settings, threads=max(1, cores() // at_once))
    jupyter_path = None
    with tempfile.TemporaryDirectory(prefix="convlab-kernelspec-") as spec_dir:
        if settings.user:
            _protect_course(root)
        if "limits" in settings.protections:
            python, site = _python_for(settings.user)
            jupyter_path = _kernelspec(Path(spec_dir), settings, python, site)
            os.chmod(spec_dir, 0o755)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [
                pool.submit(_grade_with_retry, course, s, settings, jupyter_path) for s in students
            ]
            results = []
            for student, future in zip(students, futures, strict=True):
                try:
                    results.append(future.result())
                except Exception as error:  # one submission never stops the others
                    results.append(
                        Result(student, FAILED, reason=f"{type(error).__name__}: {error}")
                    )
    return results


# ----------------------------------------------------------------------------------------------
# Feedback without hidden tests

# a block of hidden tests in an instructors' notebook; the group is what is between the markers
HIDDEN_TESTS = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS\n?", re.S)


def strip_feedback(notebook: Any, source: Any) -> Any:
    """An autograded notebook fit for students: hidden tests and their traceback lines removed.

    Args:
        notebook: the autograded notebook (nbgrader put the hidden tests back in its cells).
        source: the instructors' notebook, which says which lines are hidden.
    """
    hidden_lines = {
        line.strip()
        for cell in source.cells
        for block in HIDDEN_TESTS.findall(cell.source)
        for line in block.splitlines()
        if line.strip()
    }
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell.source = HIDDEN_TESTS.sub(
            "# (further tests run when the notebook is graded)\n", cell.source
        )
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [
                    _redact(line, hidden_lines) for line in output.get("traceback", [])
                ]
            if "text" in output:
                output["text"] = _redact(output["text"], hidden_lines)
    return notebook


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _redact(text: str, hidden: set[str]) -> str:
    kept = []
    for line in text.splitlines(keepends=True):
        plain = _ANSI.sub("", line)
        code = re.sub(r"^\s*(-+>\s*)?\d*\s*", "", plain).strip()
        quoted = code in hidden or any(len(h) >= 12 and h in plain for h in hidden)
        kept.append("    (a line of the graded tests)\n" if code and quoted else line)
    return "".join(kept)


def feedback(root: Path, lab: str, students: Sequence[str] | None = None) -> list[Path]:
    """nbgrader's feedback HTML for students, made from autograded notebooks without hidden tests.

    Writes ``feedback/<student>/<lab>/<lab>.html`` (nbgrader's own layout), never the hidden
    tests or the traceback lines that quote them.
    """
    import nbformat

    source = nbformat.read(root / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    base = root / "autograded"
    students = students or sorted(p.name for p in base.iterdir() if (p / lab).is_dir())
    written = []
    with _stage_root() as stage:
        for student in students:
            path = base / student / lab / f"{lab}.ipynb"
            if not path.exists():
                continue
            clean = strip_feedback(nbformat.read(path, as_version=4), source)
            target = stage / "autograded" / student / lab
            target.mkdir(parents=True)
            nbformat.write(clean, target / path.name)
            for timestamp in (base / student / lab).glob("timestamp.txt"):
                shutil.copy(timestamp, target)
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        command = [
            sys.executable, "-m", "nbgrader", "generate_feedback", lab, "--force",
            f"--CourseDirectory.root={root.resolve()}",
            f"--CourseDirectory.autograded_directory={stage / 'autograded'}",
        ]  # fmt: skip
        run = subprocess.run(
            command,
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            raise SystemExit(
                f"nbgrader generate_feedback failed: {_last_error(run.stdout + run.stderr)}"
            )
    for student in students:
        html = root / "feedback" / student / lab / f"{lab}.html"
        if html.exists():
            written.append(html)
    return written


# ----------------------------------------------------------------------------------------------
# Command line


def summary(results: Sequence[Result]) -> str:
    counts = Counter(r.status for r in results)
    parts = [f"{n} {status}" for status, n in sorted(counts.items(), key=lambda x: -x[1])]
    review = sum(r.status in NEEDS_A_PERSON for r in results)
    return f"{len(results)} submissions: " + ", ".join(parts) + f"; {review} need a person"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["kernel"]:
        kernel_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m convlab.grade", description="Grade every submission of a lab."
    )
    parser.add_argument("lab", help="the assignment, for example lab1_vgg")
    parser.add_argument("--course", type=Path, default=Path("."), help="course directory")
    parser.add_argument("--student", action="append", help="grade only these students")
    parser.add_argument(
        "--workers", type=int, default=None,
        help="submissions graded at once (default: one per core, as memory allows)",
    )  # fmt: skip
    parser.add_argument("--cell-timeout", type=int, default=Settings.cell_timeout)
    parser.add_argument("--notebook-timeout", type=int, default=Settings.notebook_timeout)
    parser.add_argument("--memory-gb", type=float, default=Settings.memory_gb)
    parser.add_argument("--max-checkpoint-mb", type=float, default=Settings.max_checkpoint_mb)
    parser.add_argument("--user", default=None, help="run kernels as this unprivileged user")
    parser.add_argument("--db-url", default=None, help="gradebook (default: gradebook.db)")
    parser.add_argument("--feedback", action="store_true", help="then write students' feedback")
    args = parser.parse_args(argv)
    if args.workers is None:
        args.workers = default_workers(args.memory_gb)
    settings = Settings(
        cell_timeout=args.cell_timeout,
        notebook_timeout=args.notebook_timeout,
        memory_gb=args.memory_gb,
        max_checkpoint_mb=args.max_checkpoint_mb,
        user=args.user,
    )
    begin = time.perf_counter()
    try:
        results = grade(
            args.course, args.lab, students=args.student, workers=args.workers,
            settings=settings, db_url=args.db_url,
        )  # fmt: skip
    except SystemExit as error:
        print(f"cannot grade: {error}", file=sys.stderr)
        return 2
    for result in results:
        print(result.line())
        for finding in result.findings[1:]:
            print(f"{'':24} {finding}")
    print(summary(results))
    if results:
        wall = time.perf_counter() - begin
        print(
            f"{wall:.0f} s in all: {wall / len(results):.1f} s per submission with "
            f"{args.workers} worker{'s' if args.workers > 1 else ''}"
        )
    if args.feedback:
        written = feedback(args.course, args.lab)
        print(f"feedback without hidden tests: {len(written)} files in feedback/")
    return 1 if any(r.status in NEEDS_A_PERSON for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
