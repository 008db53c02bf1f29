"""A class graded by two workers at once into a real PostgreSQL gradebook (nbgrader's db_url).

The server is Debian's PostgreSQL (``make install`` installs it when run as root), started here
on the loopback interface in a temporary folder and stopped afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbgrader")
pytest.importorskip("psycopg2")
sqlalchemy = pytest.importorskip("sqlalchemy")

import grading_corpus as corpus  # noqa: E402
from labkit import ROOT, environment, nbgrader  # noqa: E402

from convlab import grading  # noqa: E402

LAB = corpus.LAB
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("postgres")]


def _bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    if os.geteuid() == 0 and shutil.which("apt-get"):
        pytest.fail("PostgreSQL is missing although `make install` installs it here: rerun it")
    pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")


def _as_postgres(command: list[str]) -> list[str]:
    """The server refuses to run as root: run it as Debian's postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres() -> str:
    """A running server with an empty database; its SQLAlchemy URL."""
    binaries = _bin()
    data = Path(tempfile.mkdtemp(prefix="convlab-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def run(*command: str) -> None:
        subprocess.run(_as_postgres(list(command)), check=True, capture_output=True)

    run(str(binaries / "initdb"), "-D", str(data / "db"), "-U", "grader", "--auth=trust")
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    # -l: the server's output goes to a file, not to the pipes this test reads until they close
    log = str(data / "server.log")
    run(str(binaries / "pg_ctl"), "-D", str(data / "db"), "-l", log, "-o", options, "-w", "start")
    try:
        run(
            str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "grader", "course"
        )
        yield f"postgresql+psycopg2://grader@127.0.0.1:{port}/course"
    finally:
        subprocess.run(
            _as_postgres([str(binaries / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)


def test_two_workers_grade_a_class_into_postgresql_and_every_grade_lands_once(postgres, tmp_path):
    course = tmp_path
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / LAB, course / "solutions" / LAB)
    nbgrader(course, "generate_assignment", LAB, "--force", f"--CourseDirectory.db_url={postgres}")
    release = nbformat.read(course / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    # hand-ins that need no trained checkpoint: answered (all but the accuracy) and blank
    expected = {"ada": 8.0, "bo": 0.0, "cy": 8.0, "di": 0.0, "ed": 8.0, "fay": 0.0}
    for student, score in expected.items():
        folder = course / "submitted" / student / LAB
        folder.mkdir(parents=True)
        nbformat.write(corpus.answered() if score else release, folder / f"{LAB}.ipynb")

    previous = dict(os.environ)
    os.environ.update(environment())
    try:
        results = grading.grade(course, LAB, workers=2, db_url=postgres)
    finally:
        os.environ.clear()
        os.environ.update(previous)

    assert {r.student: r.score for r in results} == expected, [r.line() for r in results]
    assert not (course / "gradebook.db").exists()
    from nbgrader.api import Gradebook

    graded_cells = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("grade")]
    with Gradebook(postgres) as gradebook:
        assert sorted(s.id for s in gradebook.students) == sorted(expected)
        for student, score in expected.items():
            notebook = gradebook.find_submission_notebook(LAB, LAB, student)
            assert notebook.score == score
            assert len(notebook.grades) == len(graded_cells)
        count = gradebook.db.execute(sqlalchemy.text("select count(*) from grade")).scalar()
    assert count == len(expected) * len(graded_cells)  # no grade written twice
