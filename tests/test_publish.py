"""tools/publish.py: the students' copy holds the book, the released labs and convlab, and no
solution, hidden test or grading file."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import publish  # tools/ is on the tests' path (pyproject.toml)
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    destination = tmp_path_factory.mktemp("public")
    (destination / ".git").mkdir()  # a clone of the public repository keeps its history
    (destination / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (destination / "stale.txt").write_text("removed from the course since the last publish")
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "publish.py"), str(destination)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return destination


def test_students_get_book_labs_and_library_but_no_instructor_files(published):
    files = {p.relative_to(published).as_posix() for p in published.rglob("*") if p.is_file()}
    assert not [f for f in files if f.startswith(("solutions/", "tests/", ".ci/"))]
    assert "nbgrader_config.py" not in files and "tools/publish.py" not in files
    assert not [f for f in files if f.startswith("convlab/grading/")]
    assert "convlab/grade.py" not in files and "convlab/autograde.py" not in files
    assert "stale.txt" not in files and ".git/HEAD" in files
    for needed in ("_config.yml", "_toc.yml", "book/labs.md", "pyproject.toml"):
        assert needed in files
    assert {"convlab/check.py", "convlab/check/__init__.py"} & files  # a module or a package
    released = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("labs/*/*.ipynb"))
    assert released and all(f in files for f in released)
    for lab in released:
        assert (published / lab).read_bytes() == (ROOT / lab).read_bytes()
    readme = (published / "README.md").read_text()
    assert "Open in Colab" in readme and "instructor" not in readme.lower()


def test_the_published_library_imports_without_the_grader(published, tmp_path):
    """Students' convlab, its labs and checkers import from the published tree alone.

    Python starts without ``site`` (-S), so that this checkout's editable install, which serves
    any ``convlab.<name>`` the published tree lacks, stays out; the environment's packages
    (torch, numpy) are put on the path after the published folder.
    """
    code = (
        "import convlab, convlab.labs, convlab.check\n"
        "print(convlab.__file__, convlab.labs.__file__, convlab.check.__file__)\n"
        "try:\n    import convlab.grading\nexcept ModuleNotFoundError:\n    print('no grader')\n"
    )
    path = os.pathsep.join([str(published), *site.getsitepackages()])
    env = {**os.environ, "PYTHONPATH": path}
    run = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    imported, grader = run.stdout.splitlines()
    assert all(Path(f).is_relative_to(published) for f in imported.split()), imported
    assert grader == "no grader"


def test_no_solution_and_no_hidden_test_is_published(published):
    assert publish.all_secrets(), "no lab has solutions: the scan would find nothing"
    assert publish.find_leaks(published, publish.all_secrets()) == []


def test_publishing_stops_when_a_solution_would_leak(tmp_path):
    secret = sorted(publish.all_secrets())[0]
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs" / "notes.py").write_text("x = 1\n" + "\n".join(secret) + "\n")
    leaks = publish.find_leaks(tmp_path, publish.all_secrets())
    assert leaks and leaks[0].startswith("labs/notes.py: ")
    (tmp_path / "labs" / "notes.py").unlink()
    (tmp_path / "labs" / "notes.md").write_text("### BEGIN HIDDEN TESTS\n")
    assert publish.find_leaks(tmp_path, publish.all_secrets())


def test_publishing_into_the_course_itself_is_refused():
    with pytest.raises(SystemExit, match="outside the course"):
        publish.publish(ROOT / "public")


def test_publishing_refuses_trained_weights_wherever_they_are(tmp_path):
    course = tmp_path / "course"
    (course / "labs" / "lab1_vgg").mkdir(parents=True)
    (course / "labs" / "lab1_vgg" / "lab1_vgg.pt").write_bytes(b"weights")
    (course / "tests").mkdir()
    (course / "tests" / "kept.pt").write_bytes(b"instructors' weights, never published")
    subprocess.run(["git", "init", "-q", str(course)], check=True)
    subprocess.run(["git", "-C", str(course), "add", "."], check=True)
    with pytest.raises(SystemExit, match=r"checkpoint files would be published.*lab1_vgg\.pt$"):
        publish.publish(tmp_path / "public", root=course)
    assert not (tmp_path / "public" / "labs").exists()  # refused before anything was copied
