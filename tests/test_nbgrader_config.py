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


def test_zip_collect_files_an_lms_download_under_each_student(tmp_path):
    """A Canvas-style "download all submissions" zip: notebooks and checkpoints, resubmissions."""
    pytest.importorskip("nbgrader")
    import os
    import shutil
    import sys
    import zipfile

    lab = "lab1_vgg"
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(ROOT / "labs" / lab, tmp_path / "labs" / lab)
    archive = tmp_path / "downloaded" / lab / "archive"
    archive.mkdir(parents=True)
    notebook = (ROOT / "labs" / lab / f"{lab}.ipynb").read_text()
    with zipfile.ZipFile(archive / "submissions.zip", "w") as zipped:
        zipped.writestr(f"smithjane_1234_5678_{lab}.ipynb", notebook)
        zipped.writestr(f"smithjane_1234_5679_{lab}.pt", b"weights")
        zipped.writestr(f"doejohn_LATE_4321_8765_{lab}-1.ipynb", notebook)
        zipped.writestr("instructions.txt", "not a submission")
    env = dict(
        os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    )
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", "zip_collect", lab],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    submitted = tmp_path / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == ["doejohn", "smithjane"]
    assert sorted(p.name for p in (submitted / "smithjane" / lab).iterdir()) == [
        f"{lab}.ipynb",
        f"{lab}.pt",
    ]
    assert (submitted / "doejohn" / lab / f"{lab}.ipynb").read_text() == notebook


def test_nbgrader_runs_each_kernel_on_unix_sockets_in_a_private_folder(config, tmp_path):
    """nbgrader's own executor, configured by the course's file, starts an IPC kernel whose
    sockets live in a folder only this user can enter, at a path short enough for a socket."""
    import json
    import os
    import stat

    import nbformat
    from nbgrader.preprocessors import Execute
    from traitlets.config.loader import PyFileConfigLoader

    report = (
        "import json\nimport ipykernel\n\ninfo = ipykernel.get_connection_info(unpack=True)\n"
        "print(json.dumps([info['transport'], info['ip']]))\n"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(report)])
    Execute(config=config).preprocess(notebook, {"metadata": {"path": str(tmp_path)}})
    transport, prefix = json.loads(notebook.cells[0].outputs[0]["text"])
    assert transport == "ipc"
    assert os.path.isabs(prefix) and len(os.fsencode(f"{prefix}-99")) < 107
    folder = Path(prefix).parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and folder.stat().st_uid == os.getuid()
    # another nbgrader process (a second load of the file) gets a folder of its own
    again = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert Path(again.KernelManager.ip).parent != folder
