"""The course's nbgrader configuration: where sources and releases live, and grading settings."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config():
    pytest.importorskip("nbgrader")
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()


def test_solutions_are_the_source_and_labs_the_release(config):
    assert config.CourseDirectory.source_directory == "solutions"
    assert config.CourseDirectory.release_directory == "labs"
    assert config.OverwriteCells.add_missing_cells is True
    assert config.Execute.timeout >= 60


def test_students_checkpoints_are_never_ignored_when_submissions_are_copied(config):
    from nbgrader.coursedir import CourseDirectory

    ignore = list(config.CourseDirectory.get("ignore", CourseDirectory().ignore))
    assert not [pattern for pattern in ignore if Path("lab4_resnet.pt").match(pattern)]


def test_warnings_on_stderr_are_dropped_but_errors_are_kept(config):
    assert config.IgnorePattern.enabled is True
    pattern = re.compile(config.IgnorePattern.pattern)
    warning = (
        "/usr/lib/python3/site-packages/torch/nn/modules/conv.py:456: UserWarning: "
        "Plan failed with a cudnnException\n  return F.conv2d(\n"
    )
    assert pattern.search(warning)
    assert pattern.search("x.py:3: DeprecationWarning: old\n")
    assert not pattern.search("AssertionError: your block has no skip connection\n")
    assert not pattern.search("Traceback (most recent call last):\n  File 'x', line 1\n")


def test_grading_by_products_are_not_committed():
    ignored = subprocess.run(
        ["git", "check-ignore", "submitted/a", "autograded/a", "feedback/a", "gradebook.db"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert len(ignored.stdout.split()) == 4, ignored.stdout
