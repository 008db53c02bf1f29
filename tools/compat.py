"""The compatibility suite: the labs, checkers and grader on another PyTorch than the main one.

``make test-compat`` runs it twice, on the oldest torch pair convlab admits and on the newest
release, each in its own virtual environment (made on first use, reused after)::

    python tools/compat.py ENV --torch "torch==2.4.1 torchvision==0.19.1 numpy<2" [--full]

In ENV it installs that pair with convlab (editable) and its grading and test tools in one pip
run, then, with ENV's Python:

1. the answer checkers' tests, the hand-in's, the torchvision parity tests of every model
   family, and the training loop's checkpoint and resume tests;
2. every lab's solution graded by ``python -m convlab.grade`` from the quick-mode checkpoint
   the main environment trained (``tests/compat/<lab>.pt``, written by another torch): full
   marks; the blank release beside it: zero;
3. one lab (``--full``: all seven) trained end to end in quick mode, its notebook run as a test
   by nbval (``pytest --nbval-lax``), the hand-in cell included.

``python tools/compat.py --checkpoints`` (main environment) trains the seven solutions in quick
mode and keeps their checkpoints in ``tests/compat/``; run it after changing a lab's network.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from convlab.grading import tools_first_on_path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # the other tools
CHECKPOINTS = ROOT / "tests" / "compat"
LABS = [p.name for p in sorted((ROOT / "solutions").iterdir()) if p.name.startswith("lab")]
TRAINED_END_TO_END = "lab3_batchnorm"  # the quickest lab to train (about half a minute)
PACKAGES = ["pytest>=8", "pytest-xdist>=3", "nbval==0.11.0"]  # beside convlab[grading]
PARITY = (
    "alexnet vgg11 googlenet resnet18 resnet50 resnext50 densenet121 efficientnet_b0 "
    "batch_norm_settings mnasnet0_5 layout_has_no_se"
).split()
UNIT_TESTS = [
    ["tests/test_check.py", "tests/test_handin.py"],
    # torchvision parity of every family: its smallest variant and one of each block kind
    ["tests/models", "-k", f"(torchvision or parity) and ({' or '.join(PARITY)})"],
    # one fit with a checkpoint, a resume, a finished run loaded, another network refused
    ["tests/test_train.py", "-k", "complete_atomic or restores_every or not_trained or differs"],
]


FAILED: list[str] = []  # the suite's steps that failed, reported together at the end


def _run(
    command: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT, step: bool = False
) -> bool:
    """Run ``command``; a failing step of the suite is noted (the others still run)."""
    print("+", shlex.join(command), flush=True)
    if not step:
        subprocess.run(command, env=env, cwd=cwd, check=True)
        return True
    if subprocess.run(command, env=env, cwd=cwd).returncode == 0:
        return True
    FAILED.append(shlex.join(command))
    return False


def _environment(venv: Path) -> dict[str, str]:
    """ENV's tools first on PATH (nbgrader runs alembic from there), quick mode, one thread."""
    env = tools_first_on_path(python=venv / "bin" / "python")
    env["CONVLAB_QUICK"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    env.pop("NBGRADER_EXECUTION", None)
    env.pop("VIRTUAL_ENV", None)
    return env


def install(venv: Path, torch_spec: str) -> None:
    """ENV with the torch pair, convlab and the test tools; reused while the pair is the same.

    One install at a time per ENV (a lock beside it): ``make test`` starts the installs in the
    background while the main tests run, and the suite then waits for them here.
    """
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = venv / ".convlab-compat"
        wanted = (
            f"{torch_spec}\n{hashlib.sha256((ROOT / 'pyproject.toml').read_bytes()).hexdigest()}\n"
        )
        if marker.exists() and marker.read_text() == wanted:
            return
        if venv.exists():
            shutil.rmtree(venv)
        _run([sys.executable, "-m", "venv", str(venv)])
        python = str(venv / "bin" / "python")
        _run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        spec = shlex.split(torch_spec)
        grading = f"{ROOT}[grading]"
        _run([python, "-m", "pip", "install", "--quiet", *spec, "-e", grading, *PACKAGES])
        marker.write_text(wanted)


def _versions(python: str, env: dict[str, str]) -> str:
    code = (
        "import platform, numpy, torch, torchvision; "
        "print(f'Python {platform.python_version()}, torch {torch.__version__}, "
        "torchvision {torchvision.__version__}, numpy {numpy.__version__}')"
    )
    return subprocess.run(
        [python, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def _scores(course: Path, python: str, env: dict[str, str]) -> dict[tuple[str, str], float]:
    """(lab, student) -> score, from nbgrader's CSV export of the gradebook."""
    _run([python, "-m", "nbgrader", "export", "--to", "grades.csv"], env=env, cwd=course)
    with open(course / "grades.csv", newline="") as f:
        return {
            (row["assignment"], row["student_id"]): float(row["score"]) for row in csv.DictReader(f)
        }


def grade_every_lab(python: str, env: dict[str, str], work: Path) -> None:
    """Each lab's solution (with its kept quick checkpoint) and blank release, graded."""
    import nbformat
    from bench_grading import answered  # beside this script

    course = work / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    for lab in LABS:
        shutil.copytree(ROOT / "solutions" / lab, course / "solutions" / lab)
        _run([python, "-m", "nbgrader", "generate_assignment", lab, "--force"], env=env, cwd=course)
        solution = course / "submitted" / "solution" / lab
        solution.mkdir(parents=True)
        nbformat.write(answered(lab), solution / f"{lab}.ipynb")  # the release, answered
        shutil.copy(CHECKPOINTS / f"{lab}.pt", solution)
        blank = course / "submitted" / "blank" / lab
        blank.mkdir(parents=True)
        shutil.copy(course / "labs" / lab / f"{lab}.ipynb", blank)
        _run([python, "-m", "convlab.grade", lab, "--workers", "2"], env=env, cwd=course, step=True)
    scores = _scores(course, python, env)
    maximum = {
        lab: float(
            subprocess.run(
                [python, "-c", _MAX_SCORE, str(course / "labs" / lab / f"{lab}.ipynb")],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for lab in LABS
    }
    wrong = [
        f"{lab}: the solution scored {scores.get((lab, 'solution'))} of {maximum[lab]}"
        for lab in LABS
        if scores.get((lab, "solution")) != maximum[lab]
    ] + [
        f"{lab}: the blank release scored {scores.get((lab, 'blank'))}"
        for lab in LABS
        if scores.get((lab, "blank")) != 0
    ]
    if wrong:
        FAILED.extend(wrong)
        return
    print(f"graded: every solution at full marks, every blank release at 0 ({len(LABS)} labs)")


_MAX_SCORE = (
    "import sys, nbformat; nb = nbformat.read(sys.argv[1], as_version=4); "
    "print(sum(c.metadata.get('nbgrader', {}).get('points', 0) for c in nb.cells "
    "if c.metadata.get('nbgrader', {}).get('grade')))"
)


def train_end_to_end(python: str, env: dict[str, str], work: Path, labs: list[str]) -> None:
    """Each lab's solution run top to bottom in quick mode by nbval, in a folder of its own."""
    for lab in labs:
        folder = work / "trained" / lab
        folder.mkdir(parents=True)
        shutil.copy(ROOT / "solutions" / lab / f"{lab}.ipynb", folder)
        ran = _run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
             "--rootdir", str(folder), str(folder / f"{lab}.ipynb")],
            env=env,
            cwd=folder,
            step=True,
        )  # fmt: skip
        if ran and not (folder / f"{lab}.zip").exists():
            FAILED.append(f"{lab}'s last cell packed no {lab}.zip")


def make_checkpoints() -> None:
    """Train every solution in quick mode here (the main environment) and keep its checkpoint."""
    import nbformat
    from ipc_kernel import execute

    CHECKPOINTS.mkdir(exist_ok=True)
    env = _environment(Path(sys.executable).parent.parent)
    previous = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        for lab in LABS:
            with tempfile.TemporaryDirectory() as folder:
                notebook = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
                started = time.perf_counter()
                execute(notebook, folder, timeout=1200, save_as=f"{lab}.ipynb")
                shutil.copy(Path(folder) / f"{lab}.pt", CHECKPOINTS / f"{lab}.pt")
                print(f"{lab}: {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        os.environ.clear()
        os.environ.update(previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("venv", nargs="?", type=Path, help="the environment's folder")
    parser.add_argument("--torch", help='the pair to install, "torch==X torchvision==Y ..."')
    parser.add_argument("--full", action="store_true", help="train all seven labs end to end")
    parser.add_argument("--checkpoints", action="store_true", help="remake tests/compat/*.pt")
    parser.add_argument("--install-only", action="store_true", help="make ENV, run nothing")
    args = parser.parse_args()
    if args.checkpoints:
        make_checkpoints()
        return
    if args.venv is None or not args.torch:
        parser.error("give the environment's folder and --torch")
    started = time.perf_counter()
    venv = args.venv.resolve()
    install(venv, args.torch)
    installed = time.perf_counter()
    if args.install_only:
        print(f"{venv} ready in {installed - started:.0f} s")
        return
    python = str(venv / "bin" / "python")
    env = _environment(venv)
    print(f"compatibility suite on {_versions(python, env)}", flush=True)
    for selection in UNIT_TESTS:
        _run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection], env=env, step=True
        )
    with tempfile.TemporaryDirectory(prefix="convlab-compat-") as work:
        grade_every_lab(python, env, Path(work))
        train_end_to_end(python, env, Path(work), LABS if args.full else [TRAINED_END_TO_END])
    done = time.perf_counter()
    took = f"install {installed - started:.0f} s, suite {done - installed:.0f} s"
    if FAILED:
        listing = "\n  ".join(FAILED)
        sys.exit(f"FAILED on {_versions(python, env)} ({took}):\n  {listing}")
    print(f"passed on {_versions(python, env)}: {took}")


if __name__ == "__main__":
    main()
