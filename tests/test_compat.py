"""What the compatibility suite (tools/compat.py, `make test-compat`) relies on, checked here.

The suite itself runs on other torch releases in environments of its own; this side makes sure
that its inputs are current: a kept quick-mode checkpoint for every lab, written by this
environment's torch and fitting the lab's network, so that a change of a lab's network is caught
by the main tests rather than by a failing grade on another torch.
"""

from __future__ import annotations

from pathlib import Path

import fullmode_checkpoints  # tools/
import labkit
import pytest
import torch

from convlab import labs
from convlab.labs.settings import lab_settings
from convlab.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "tests" / "compat"


def test_every_lab_has_a_kept_quick_checkpoint_and_nothing_else_is_kept():
    assert sorted(p.stem for p in KEPT.glob("*.pt")) == labkit.lab_names()


@pytest.mark.parametrize("lab", labkit.lab_names())
def test_the_kept_checkpoint_is_a_finished_quick_run_of_the_solutions_network(lab, monkeypatch):
    monkeypatch.setenv(labs.QUICK_ENV, "1")
    model, _ = fullmode_checkpoints.solution_network(lab)  # built by the notebook's own cells
    state = load_checkpoint(KEPT / f"{lab}.pt", model)  # refuses another network, in one line
    settings = lab_settings(lab)
    assert state["epoch"] == settings.quick_epochs, "remake: python tools/compat.py --checkpoints"
    assert state["config"]["batch_size"] == settings.quick_batch_size
    assert torch.isfinite(torch.cat([p.flatten() for p in model.parameters()])).all()
