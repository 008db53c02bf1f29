"""Make the students' copy of the course: everything except solutions, tests and grading files.

This repository is the instructors' copy. Students get the tree this script writes: the book's
sources (built and published by its own workflow), the released labs, the convlab package, and a
README for students. It leaves out ``solutions/`` (the labs with their solutions and hidden
tests), ``tests/`` (whose lab cases quote solutions), the grader (``convlab/grading/`` and the
``convlab.grade`` and ``convlab.autograde`` commands: students never grade), nbgrader's
configuration and CI files, then scans every file it wrote for any line of a solution or hidden
test and refuses to finish if it finds one.

    python tools/publish.py ../convlab-public     # a clone of the public repository, or a new folder

Files of the destination that are not in the course any more are removed; its ``.git`` folder is
kept, so the next steps are ``git add -A``, ``git commit`` and ``git push`` there.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from convlab.grading import HIDDEN_TESTS as HIDDEN

ROOT = Path(__file__).resolve().parents[1]
# instructors only: lab sources, tests (the lab cases quote solutions), the grader and its
# configuration (nothing students get imports convlab.grading)
PRIVATE = (
    "solutions/",
    "tests/",
    ".ci/",
    "convlab/grading/",
    "convlab/grade.py",
    "convlab/autograde.py",
    "nbgrader_config.py",
    "tools/publish.py",
    "tools/bench_grading.py",
)
STUDENT_README = Path("tools", "README.students.md")
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
WINDOW = 3  # consecutive lines: one generic line (`return nn.Sequential(`) proves nothing
MIN_CHARACTERS = 40  # nor do a few short lines (`)`, `return x`)

Fingerprint = tuple[str, ...]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _windows(lines: list[str], size: int) -> set[Fingerprint]:
    return {tuple(lines[i : i + size]) for i in range(len(lines) - size + 1)}


def windows_of(text: str) -> set[Fingerprint]:
    """Every run of one to three consecutive non-blank lines of ``text``."""
    lines = _lines(text)
    return {w for size in range(1, WINDOW + 1) for w in _windows(lines, size)}


def public_text(root: Path = ROOT, released: bool = True) -> set[Fingerprint]:
    """Runs of lines that students get by design: the convlab package (whose reference
    implementations the labs check answers against) less the grader, and, with ``released``,
    the released labs."""
    found: set[Fingerprint] = set()
    for path in sorted((root / "convlab").rglob("*.py")):
        if not path.relative_to(root).as_posix().startswith(PRIVATE):
            found |= windows_of(path.read_text())
    if released:
        for path in sorted(root.glob("labs/*/*.ipynb")):
            found |= windows_of(text_of(path))
    return found


def secrets(
    notebook: Path, public: set[Fingerprint] | frozenset[Fingerprint] = frozenset()
) -> set[Fingerprint]:
    """Fingerprints of a lab source's solutions and hidden tests.

    A fingerprint is a run of three consecutive non-blank lines of a solution or hidden-test
    region (the whole region when it is shorter) of at least 40 characters, not counting runs
    that the notebook's public cells also contain, nor those in ``public`` (text students get
    anyway: an answer may well read like the library's reference implementation).
    """
    text = "\n".join(cell.source for cell in nbformat.read(notebook, as_version=4).cells)
    mine = _lines(SOLUTION.sub("", HIDDEN.sub("", text)))
    found: set[Fingerprint] = set()
    for region in SOLUTION.findall(text) + HIDDEN.findall(text):
        lines = _lines(region)
        size = min(WINDOW, len(lines))
        found |= {w for w in _windows(lines, size) if len("".join(w)) >= MIN_CHARACTERS}
    return {w for w in found if w not in _windows(mine, len(w)) and w not in public}


def all_secrets(root: Path = ROOT) -> set[Fingerprint]:
    """The fingerprints of every lab in ``solutions/``, less what students get anyway."""
    public = public_text(root)
    return {w for path in sorted(root.glob("solutions/*/*.ipynb")) for w in secrets(path, public)}


def text_of(path: Path) -> str:
    """A file's text (a notebook's cells, one after the other); empty for binary files."""
    if path.suffix == ".ipynb":
        return "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
    try:
        return path.read_text()
    except UnicodeDecodeError:
        return ""


def quoted(text: str, secret: set[Fingerprint]) -> list[Fingerprint]:
    """The fingerprints that ``text`` contains, as consecutive non-blank lines."""
    lines = _lines(text)
    return sorted(w for size in range(1, WINDOW + 1) for w in _windows(lines, size) & secret)


def find_leaks(folder: Path, secret: set[Fingerprint]) -> list[str]:
    """``path: lines`` for every fingerprint or nbgrader marker found in a file under ``folder``."""
    leaks = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts):
        text = text_of(path)
        found = [" / ".join(w) for w in quoted(text, secret)]
        if path.suffix != ".py":  # code may name the markers (convlab.grading strips them)
            found += [line for line in _lines(text) if any(marker in line for marker in MARKERS)]
        leaks += [f"{path.relative_to(folder)}: {line}" for line in found]
    return leaks


# Trained weights never go to students, whatever folder they are in.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".pt.prev")


def course_files(root: Path = ROOT) -> list[str]:
    """The files git tracks in the course, less the instructors' ones."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    return [f for f in listed if f and not f.startswith(PRIVATE) and (root / f).is_file()]


def publish(destination: Path, root: Path = ROOT) -> list[str]:
    """Write the students' tree into ``destination``; the files written.

    Raises:
        SystemExit: a solution or hidden test would be published (nothing is left half-written
            in a way that could be pushed by accident: the leaked files are named).
    """
    destination = destination.resolve()
    if destination == root.resolve() or root.resolve() in destination.parents:
        raise SystemExit("publish into a folder outside the course repository")
    destination.mkdir(parents=True, exist_ok=True)
    for old in destination.iterdir():
        if old.name != ".git":
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    files = course_files(root)
    weights = [name for name in files if name.endswith(CHECKPOINT_SUFFIXES)]
    if weights:  # a trained network is an answer: a student could hand it in as their own
        raise SystemExit(
            "checkpoint files would be published (keep them under tests/ or out of git): "
            + ", ".join(weights)
        )
    for name in files:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    shutil.copy2(root / STUDENT_README, destination / "README.md")
    (destination / STUDENT_README).unlink(missing_ok=True)
    leaks = find_leaks(destination, all_secrets(root))
    if leaks:
        shutil.rmtree(destination / "labs", ignore_errors=True)
        raise SystemExit(
            "solution or hidden-test text found; labs/ removed from the copy, fix and rerun:\n"
            + "\n".join(leaks)
        )
    return sorted(p.relative_to(destination).as_posix() for p in destination.rglob("*")
                  if p.is_file() and ".git" not in p.parts)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("destination", type=Path, help="folder of the students' repository")
    args = parser.parse_args(argv)
    written = publish(args.destination)
    labs = sorted({f.split("/")[1] for f in written if f.startswith("labs/lab")})
    print(f"{len(written)} files written to {args.destination}; labs: {', '.join(labs)}")
    print("no solution or hidden test found in them; commit and push that folder to publish")
    return 0


if __name__ == "__main__":
    sys.exit(main())
