"""convlab.labs: modes, data, training with a checkpoint, grading by accuracy, thresholds."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

from convlab import labs
from convlab.train import CheckpointError


@pytest.fixture
def quick(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVLAB_QUICK", "1")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():  # start() silences warnings; keep that inside the test
        yield labs.start("lab1_vgg")


def linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 10))


class Constant(nn.Module):
    """Always answers class 0: a tenth of the stratified digits test split."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([1.0] + [0.0] * 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(x.shape[0], 10)


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("true", True), ("0", False), ("", False), (None, False)]
)
def test_quick_mode_follows_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("CONVLAB_QUICK", raising=False)
    else:
        monkeypatch.setenv("CONVLAB_QUICK", value)
    assert labs.quick_mode() is expected


def test_start_reports_versions_device_and_mode_and_silences_warnings(quick, capsys):
    with warnings.catch_warnings():
        lab = labs.start("lab1_vgg")
        assert warnings.filters[0][0] == "ignore"
    out = capsys.readouterr().out
    assert "torch " + torch.__version__ in out and "device: " in out and "quick mode" in out
    assert lab.quick and lab.name == "lab1_vgg"
    assert lab.checkpoint.name == "lab1_vgg.pt"


def test_full_mode_reads_the_data_folder_from_the_environment(monkeypatch):
    monkeypatch.delenv("CONVLAB_QUICK", raising=False)
    monkeypatch.setenv("CONVLAB_DATA", "/somewhere/data")
    with warnings.catch_warnings():
        lab = labs.start("lab1_vgg")
    assert not lab.quick and lab.root == "/somewhere/data"
    assert lab.epochs == labs.LABS["lab1_vgg"].epochs


def test_unknown_lab_names_the_known_ones():
    with pytest.raises(ValueError, match="lab1_vgg"):
        labs.start("lab9_nothing")


def test_quick_data_are_the_digits_at_the_lab_size(quick):
    data = quick.data()
    assert data.name == "digits" and data.image_size == labs.LABS["lab1_vgg"].quick_size
    assert quick.data() is data  # built once


def test_accuracy_points_are_linear_between_the_thresholds(quick):
    model = Constant()
    acc = quick.accuracy(model)
    assert acc == pytest.approx(0.1, abs=0.01)
    assert quick.accuracy_points(model, 4, acc - 0.1, acc + 0.1) == pytest.approx(2, abs=0.01)
    assert quick.accuracy_points(model, 4, acc + 0.01, 0.9) == 0
    assert quick.accuracy_points(model, 4, 0.0, acc) == 4
    with pytest.raises(ValueError, match="low < high"):
        quick.accuracy_points(model, 4, 0.5, 0.5)


def test_train_saves_the_checkpoint_and_grading_loads_it(quick, monkeypatch):
    model = linear_model()
    history = quick.train(model, epochs=1, lr=1e-3, progress=False, plot=False)
    assert len(history) == 1 and quick.checkpoint.exists()
    graded = linear_model(seed=1)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert quick.train(graded, epochs=1, progress=False, plot=False) == history
    for a, b in zip(model.state_dict().values(), graded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(CheckpointError, match="1 of 2 epochs"):
        quick.train(graded, epochs=2, progress=False, plot=False)


def test_grading_without_a_checkpoint_says_what_to_hand_in(quick, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(CheckpointError, match=r"lab1_vgg\.pt"):
        quick.train(linear_model())


def test_thresholds_come_from_the_recorded_run_and_never_from_thin_air():
    with pytest.raises(LookupError, match="no recorded full reference run"):
        labs.thresholds("lab1_vgg", quick=False)
    entry = labs.recorded("lab1_vgg", quick=True)
    assert entry is not None, "record it: python -m convlab.labs reference lab1_vgg --quick"
    low, high = labs.thresholds("lab1_vgg", quick=True)
    assert low == pytest.approx(0.1) and low < high <= 1
    assert high == pytest.approx(min(entry["accuracies"]) - labs.THRESHOLD_MARGIN)
    assert entry["machine"]["device"] and entry["versions"]["torch"] and entry["date"]


def test_reference_network_is_the_lab_table_with_default_initialization():
    model = labs.LABS["lab1_vgg"].reference(10, 1)
    assert sum(p.numel() for p in model.parameters()) == 86_346
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    first = model.features[0]
    bound = 1 / (first.in_channels * 9) ** 0.5  # PyTorch's default: U(-1/sqrt(fan_in), ...)
    assert first.bias.abs().max() <= bound and first.bias.abs().max() > 0


def test_record_reference_writes_low_high_and_the_machine(monkeypatch, tmp_path):
    tiny = labs.LabSettings(
        "lab1_vgg", lambda k, c: nn.Sequential(nn.Flatten(), nn.Linear(c * 8 * 8, k)),
        quick_epochs=1, quick_lr=0.1, quick_size=8, quick_batch_size=256,
        data="fashion_mnist", epochs=1, lr=0.1, batch_size=256,
    )  # fmt: skip
    monkeypatch.setitem(labs.LABS, "lab1_vgg", tiny)
    path = tmp_path / "labs.json"
    entry = labs.record_reference(
        "lab1_vgg", seeds=(0, 1), path=path, checkpoint_dir=tmp_path / "ckpt"
    )
    stored = json.loads(path.read_text())["lab1_vgg"]["quick"]
    assert stored == entry and len(entry["accuracies"]) == 2
    assert entry["high"] == min(entry["accuracies"]) and entry["low"] == 0.1
    assert (tmp_path / "ckpt" / "lab1_vgg.pt").exists()
