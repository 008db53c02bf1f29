"""The command line: python -m convlab summary / models."""

from __future__ import annotations

import subprocess
import sys

import pytest

from convlab.__main__ import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "convlab", *args], capture_output=True, text=True, timeout=300
    )


def test_summary_vgg16_prints_the_lecture_table():
    result = run("summary", "vgg16")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "input 1x3x224x224" in out
    assert "3,211,264" in out and "138,357,544" in out and "138,344,128" in out


def test_models_lists_every_name(capsys):
    from convlab import models

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == models.names()


def test_small_configuration_and_input_size(capsys):
    assert (
        main(["summary", "resnet18", "--small", "--in-channels", "1", "--num-classes", "10"]) == 0
    )
    out = capsys.readouterr().out
    assert "input 1x1x32x32" in out and "1x10" in out
    assert main(["summary", "lenet5", "--input-size", "1x28x28", "--batch", "4"]) == 0
    assert "input 4x1x28x28" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["summary", "resnet19"], "unknown model 'resnet19'"),
        (["summary", "vgg16", "--input-size", "16"], "does not fit"),
        (["summary", "vgg16", "--batch", "0"], "--batch"),
    ],
)
def test_bad_input_is_one_line_on_stderr(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unknown_model_lists_valid_names(capsys):
    main(["summary", "resnet19"])
    err = capsys.readouterr().err
    assert "resnet18" in err  # the closest names are suggested
