"""Handing a lab in: lab.hand_in() checks the checkpoint and packs it with the notebook.

One quick-mode run of lab 1's reference network (about 15 s on one thread) serves every test;
Colab's front end is stood in for by modules named as Colab's, put in ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from convlab import labs
from convlab.labs import HandInError
from convlab.train import CheckpointError

ROOT = Path(__file__).resolve().parents[1]
LAB = "lab1_vgg"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, nn.Module]:
    """A finished quick-mode checkpoint of lab 1 and the network it trained."""
    folder = tmp_path_factory.mktemp("trained")
    previous = os.environ.get(labs.QUICK_ENV)
    os.environ[labs.QUICK_ENV] = "1"
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        lab = labs.start(LAB)
        model, _, _ = labs.reference_start(LAB, quick=True, seed=0)
        lab.train(model, progress=False, plot=False)
    finally:
        os.chdir(cwd)
        if previous is None:
            del os.environ[labs.QUICK_ENV]
        else:
            os.environ[labs.QUICK_ENV] = previous
    return folder / f"{LAB}.pt", model


@pytest.fixture
def lab(tmp_path, monkeypatch, trained):
    """A student's folder: the notebook and the finished checkpoint, the lab started there."""
    monkeypatch.setenv(labs.QUICK_ENV, "1")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "labs" / LAB / f"{LAB}.ipynb", tmp_path)
    shutil.copy(trained[0], tmp_path)
    return labs.start(LAB)


def model_like(trained) -> nn.Module:
    model, _, _ = labs.reference_start(LAB, quick=True, seed=1)  # same network, other weights
    assert model.state_dict().keys() == trained[1].state_dict().keys()
    return model


def test_the_archive_holds_the_notebook_and_the_checkpoint(lab, trained, capsys):
    archive = lab.hand_in(model_like(trained))
    assert archive == Path(f"{LAB}.zip")
    with zipfile.ZipFile(archive) as packed:
        assert sorted(packed.namelist()) == [f"{LAB}.ipynb", f"{LAB}.pt"]
        assert packed.read(f"{LAB}.pt") == trained[0].read_bytes()
        assert packed.read(f"{LAB}.ipynb") == Path(f"{LAB}.ipynb").read_bytes()
    accuracy = lab.accuracy(trained[1])  # what the grader measures, from the same weights
    out = capsys.readouterr().out
    assert f"8 of 8 epochs, test accuracy {accuracy:.2%}, as grading will measure it" in out
    assert "quick mode" in out and "as last saved" in out


def test_a_missing_checkpoint_says_to_train_first(lab, trained):
    lab.checkpoint.unlink()
    with pytest.raises(HandInError, match=r"No lab1_vgg.pt next to the notebook: run the training"):
        lab.hand_in(model_like(trained))
    assert not Path(f"{LAB}.zip").exists()


def test_an_unfinished_checkpoint_says_to_resume(lab, trained):
    state = torch.load(lab.checkpoint, weights_only=True)
    torch.save({**state, "epoch": 3}, lab.checkpoint)
    with pytest.raises(HandInError, match=r"holds 3 of 8 epochs: run the training cell again"):
        lab.hand_in(model_like(trained))


def test_a_network_other_than_the_checkpoints_is_named(lab):
    with pytest.raises(HandInError, match="written by a different network than the model given"):
        lab.hand_in(nn.Sequential(nn.Flatten(), nn.Linear(256, 10)))


def test_a_checkpoint_that_runs_code_when_loaded_is_refused(lab, trained):
    torch.save({"model": {}, "epoch": 8, "payload": types.SimpleNamespace()}, lab.checkpoint)
    lab.checkpoint.with_name(f"{LAB}.pt.prev").unlink(missing_ok=True)
    with pytest.raises(HandInError, match="unreadable"):
        lab.hand_in(model_like(trained))


def test_without_the_notebook_it_names_the_two_files_to_hand_in(lab, trained):
    Path(f"{LAB}.ipynb").unlink()
    with pytest.raises(HandInError) as info:
        lab.hand_in(model_like(trained))
    text = str(info.value)
    assert "notebook='path/to/lab1_vgg.ipynb'" in text
    assert "File > Download > Download .ipynb" in text and "lab1_vgg.pt" in text


def test_the_notebook_jupyter_names_is_the_one_packed(lab, trained, tmp_path, monkeypatch):
    elsewhere = tmp_path / "renamed copy.ipynb"
    shutil.move(f"{LAB}.ipynb", elsewhere)
    monkeypatch.setenv("JPY_SESSION_NAME", str(elsewhere))
    with zipfile.ZipFile(lab.hand_in(model_like(trained))) as packed:
        assert packed.read(f"{LAB}.ipynb") == elsewhere.read_bytes()


def test_nothing_is_packed_while_grading(lab, trained, monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert lab.hand_in(model_like(trained)) is None
    assert not Path(f"{LAB}.zip").exists()
    assert "skipped while this notebook is graded" in capsys.readouterr().out


@pytest.fixture
def colab(monkeypatch):
    """Colab's modules as the hand-in uses them: the front end's notebook, and the download."""
    calls: dict[str, list] = {"downloads": [], "requests": []}
    notebook = {"cells": [{"cell_type": "code", "source": "x = 1"}], "nbformat": 4}
    replies = {"reply": {"ipynb": notebook}}

    def blocking_request(kind, request="", timeout_sec=5):
        calls["requests"].append(kind)
        if isinstance(replies["reply"], Exception):
            raise replies["reply"]
        return replies["reply"]

    package = types.ModuleType("google.colab")
    package._message = types.SimpleNamespace(blocking_request=blocking_request)
    package.files = types.SimpleNamespace(download=lambda path: calls["downloads"].append(path))
    google = types.ModuleType("google")
    google.colab = package
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", package)
    monkeypatch.setitem(sys.modules, "google.colab._message", package._message)
    monkeypatch.setitem(sys.modules, "google.colab.files", package.files)
    return calls, notebook, replies


def test_on_colab_the_notebook_comes_from_the_front_end_and_is_downloaded(lab, trained, colab):
    calls, notebook, _ = colab
    Path(f"{LAB}.ipynb").unlink()  # on Colab the notebook is not on the runtime's disk
    archive = lab.hand_in(model_like(trained))
    assert calls["requests"] == ["get_ipynb"] and calls["downloads"] == [str(archive)]
    with zipfile.ZipFile(archive) as packed:
        assert json.loads(packed.read(f"{LAB}.ipynb")) == notebook


def test_when_colab_does_not_answer_it_names_the_two_files(lab, trained, colab):
    _, _, replies = colab
    replies["reply"] = TimeoutError("no reply")
    with pytest.raises(HandInError) as info:
        lab.hand_in(model_like(trained))
    assert str(info.value).startswith("Colab did not send this notebook; hand in two files")
    assert "Files pane" in str(info.value)


def test_running_the_training_cell_again_or_out_of_order_loads_instead_of_training(lab, trained):
    """Twice, or after re-running the cell that builds the network: the same weights, no step."""
    first = model_like(trained)
    history = lab.train(first, progress=False, plot=False)
    assert len(history) == lab.epochs
    for attempt in (first, model_like(trained)):  # the same model again, then a rebuilt one
        attempt.register_forward_hook(lambda *args: pytest.fail("the finished run trained again"))
        assert lab.train(attempt, progress=False, plot=False) == history
        for key, value in trained[1].state_dict().items():
            assert torch.equal(attempt.state_dict()[key], value)
    other = nn.Sequential(nn.Flatten(), nn.Linear(256, 10))  # the network cell changed since
    with pytest.raises(CheckpointError, match="written by a different network than the model"):
        lab.train(other, progress=False, plot=False)
