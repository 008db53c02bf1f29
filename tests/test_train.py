"""convlab.train: learning, no per-step synchronisation, checkpoints, resumption, grading mode."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convlab import data as datasets
from convlab.models.googlenet import GoogLeNetOutputs, googlenet
from convlab.train import (
    CheckpointError,
    NonFiniteLossError,
    evaluate,
    fit,
    load_checkpoint,
    only_load_checkpoints,
)

ROOT = Path(__file__).resolve().parents[1]


def small_net(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(32, num_classes),
    )


@pytest.fixture(scope="module")
def digits():
    return datasets.digits(size=16, batch_size=64, device="cpu")


def test_fit_learns_the_digits_and_reports_history(digits, capsys):
    model = small_net()
    history = fit(model, digits, 6, lr=0.2, progress=False)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert set(history[0]) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "test_accuracy",
        "seconds",
        "images_per_second",
    }
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_accuracy"] > 0.9
    assert evaluate(model, digits) == pytest.approx(history[-1]["test_accuracy"])
    out = capsys.readouterr().out
    assert out.count("training on cpu") == 1


def test_evaluate_counts_correct_predictions(digits):
    model = small_net().eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in digits.test:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    assert evaluate(model, digits) == pytest.approx(correct / total)
    assert total == digits.test.num_samples


def test_metrics_are_read_once_per_epoch_not_per_step(digits, monkeypatch):
    """Every read of a tensor's value from the device is counted: a handful per epoch, not one per step."""
    reads = {"n": 0}
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            reads["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    steps = len(digits.train)
    assert steps >= 20
    fit(small_net(), digits, 1, progress=False, check_every=10**6)
    monkeypatch.undo()
    assert reads["n"] <= 8, f"{reads['n']} reads of device values in an epoch of {steps} steps"


class NaNAfter(nn.Module):
    """A network whose output turns to NaN from its ``bad_step``-th training call on."""

    def __init__(self, bad_step: int) -> None:
        super().__init__()
        self.net = small_net()
        self.bad_step = bad_step
        self.calls = 0

    def forward(self, x):
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.bad_step:
                out = out * float("nan")
        return out


def test_nonfinite_loss_stops_training_and_names_the_step(digits):
    model = NaNAfter(bad_step=7)
    with pytest.raises(NonFiniteLossError, match=r"at step 7 \(") as info:
        fit(model, digits, 3, progress=False, check_every=5)
    assert "lower lr" in str(info.value)
    assert model.calls <= 7 + 5, "training went on long after the loss became NaN"


class OutOfMemory(nn.Module):
    def forward(self, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_is_reraised_with_the_batch_size_and_advice(digits):
    with pytest.raises(torch.cuda.OutOfMemoryError, match=r"batch size 64.*batch_size=32"):
        fit(OutOfMemory(), digits, 1, progress=False)


def test_wrong_number_of_outputs_is_one_clear_error(digits):
    with pytest.raises(ValueError, match="build it with num_classes=10"):
        fit(small_net(num_classes=7), digits, 1, progress=False)


def test_defaults_and_overrides(digits):
    made = {}

    def adam(groups):
        groups = list(groups)
        made["groups"] = groups
        made["optimizer"] = torch.optim.AdamW(groups, lr=1e-3)
        return made["optimizer"]

    fit(small_net(), digits, 1, optimizer=adam, schedule="cosine", progress=False)
    decays = sorted(g["weight_decay"] for g in made["groups"])
    assert decays == [0.0, 5e-4]  # biases and batch-norm parameters are not decayed
    no_decay = next(g for g in made["groups"] if g["weight_decay"] == 0.0)
    assert all(p.dim() == 1 for p in no_decay["params"])
    with pytest.raises(ValueError, match="unknown schedule"):
        fit(small_net(), digits, 1, schedule="linear", progress=False)


def test_checkpoint_is_complete_atomic_and_loads_with_weights_only(digits, tmp_path):
    path = tmp_path / "run.pt"
    fit(small_net(), digits, 2, checkpoint=path, progress=False)
    assert path.exists() and (tmp_path / "run.pt.prev").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt", "run.pt.prev"]  # no temp left
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert set(state) >= {"model", "optimizer", "scheduler", "scaler", "rng", "config"}
    assert set(state["rng"]) >= {"torch", "numpy", "python"}
    assert torch.load(tmp_path / "run.pt.prev", weights_only=True)["epoch"] == 1


def test_resume_restores_every_random_number_generator(digits, tmp_path):
    path = tmp_path / "run.pt"
    fit(small_net(), digits, 1, checkpoint=path, progress=False)
    expected = (torch.rand(3), np.random.rand(3), __import__("random").random())
    torch.manual_seed(123)
    np.random.seed(123)
    __import__("random").seed(123)
    fit(
        small_net(), digits, 1, checkpoint=path, progress=False
    )  # finished: restores, trains nothing
    got = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1])
    assert got[2] == expected[2]


def test_finished_checkpoint_is_not_trained_again(digits, tmp_path):
    path = tmp_path / "run.pt"
    first = fit(small_net(), digits, 2, checkpoint=path, progress=False)
    model = small_net()
    again = fit(model, digits, 2, checkpoint=path, progress=False)
    assert again == first
    for key, value in load_checkpoint(path)["model"].items():
        assert torch.equal(model.state_dict()[key], value)


def test_a_model_that_differs_from_its_checkpoint_gets_one_clear_error(digits, tmp_path, request):
    """A network changed after training (a cell re-run with other arguments): say so, plainly."""
    path = tmp_path / "run.pt"
    fit(small_net(), digits, 1, checkpoint=path, progress=False)
    wider = small_net()
    wider[0] = nn.Conv2d(1, 24, 3, padding=1, bias=False)  # 24 channels where 16 were trained
    fewer = nn.Sequential(
        *list(small_net())[:4], nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)
    )
    calls = [
        lambda model: fit(model, digits, 1, checkpoint=path, progress=False),  # run again
        lambda model: load_checkpoint(path, model),
    ]
    for call in calls:
        for model, detail in (
            (
                wider,
                "differ in shape (`0.weight` is (16, 1, 3, 3) there, (24, 1, 3, 3) in your model)",
            ),
            (fewer, "it holds"),
        ):
            with pytest.raises(CheckpointError) as info:
                call(model)
            text = str(info.value)
            assert "\n" not in text
            assert text.startswith("run.pt was written by a different network than the model given")
            assert (
                detail in text and "delete run.pt (and run.pt.prev) to train this network" in text
            )
    fit(small_net(), digits, 1, checkpoint=path, progress=False)  # the right network: resumes
    request.getfixturevalue("load_only")
    with pytest.raises(CheckpointError, match="written by a different network"):
        fit(wider, digits, 1, checkpoint=path, progress=False)


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(digits, tmp_path, capsys):
    path = tmp_path / "run.pt"
    fit(small_net(), digits, 2, checkpoint=path, progress=False)
    reference = torch.load(path, weights_only=True)["model"]
    path.write_bytes(path.read_bytes()[:1000])  # truncated, as by a full disk or a killed copy
    model = small_net()
    fit(model, digits, 2, checkpoint=path, progress=False)
    out = capsys.readouterr().out
    assert "run.pt is unreadable" in out and "resuming from" in out and "(epoch 1)" in out
    for key, value in reference.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_both_checkpoints_unreadable_is_one_clear_error(digits, tmp_path):
    path = tmp_path / "run.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"unreadable.*delete them to start over"):
        fit(small_net(), digits, 1, checkpoint=path, progress=False)


def test_resuming_with_other_settings_is_refused(digits, tmp_path):
    path = tmp_path / "run.pt"
    fit(small_net(), digits, 1, checkpoint=path, progress=False)
    with pytest.raises(CheckpointError, match=r"epochs=1 \(now 3\)"):
        fit(small_net(), digits, 3, checkpoint=path, lr=0.1, progress=False)


# ----------------------------------------------------------------------------------------------
# Settings that change the run are checked on resume; the checkpoint's format version on read


@pytest.fixture(scope="module")
def finished_run(digits, tmp_path_factory):
    """A finished one-epoch run with fit's defaults: its checkpoint and history."""
    path = tmp_path_factory.mktemp("finished") / "run.pt"
    return path, fit(small_net(), digits, 1, checkpoint=path, progress=False)


def _adam(groups):
    return torch.optim.Adam(groups, lr=1e-3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"momentum": 0.5}, "momentum=0.9 (now 0.5)"),
        ({"nesterov": False}, "nesterov=True (now False)"),
        ({"weight_decay": 0.0}, "weight_decay=0.0005 (now 0.0)"),
        ({"label_smoothing": 0.0}, "label_smoothing=0.1 (now 0.0)"),
        ({"optimizer": _adam, "lr": 0.1}, "optimizer='SGD' (now 'Adam')"),
    ],
    ids=["momentum", "nesterov", "weight_decay", "label_smoothing", "optimizer"],
)
def test_resuming_with_other_optimizer_settings_is_refused(
    digits, finished_run, tmp_path, change, message
):
    path = tmp_path / "run.pt"
    shutil.copy(finished_run[0], path)
    with pytest.raises(CheckpointError, match=re.escape(message)) as info:
        fit(small_net(), digits, 1, checkpoint=path, progress=False, **change)
    assert "\n" not in str(info.value)


def test_a_checkpoint_from_a_newer_convlab_is_refused(digits, finished_run, tmp_path, request):
    path = tmp_path / "run.pt"
    torch.save({**torch.load(finished_run[0], weights_only=True), "format": 99}, path)
    with pytest.raises(CheckpointError, match=r"format 99.*upgrade convlab") as info:
        fit(small_net(), digits, 1, checkpoint=path, progress=False)
    assert "\n" not in str(info.value)
    request.getfixturevalue("load_only")  # grading refuses it too
    with pytest.raises(CheckpointError, match="upgrade convlab"):
        fit(small_net(), digits, 1, checkpoint=path, progress=False)


# Checkpoint format 1 (convlab until 2026-12-05): these keys, and these in its "config".
FORMAT_1 = (
    "format",
    "epoch",
    "config",
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "rng",
    "history",
)
FORMAT_1_CONFIG = ("epochs", "lr", "batch_size", "world_size", "schedule")


def _as_format_1(source: Path, target: Path) -> None:
    state = torch.load(source, weights_only=True)
    old = {key: state[key] for key in FORMAT_1}
    old["format"] = 1
    old["config"] = {key: state["config"][key] for key in FORMAT_1_CONFIG}
    torch.save(old, target)


def test_a_format_1_checkpoint_resumes_with_a_one_line_note(digits, tmp_path, capsys):
    straight = tmp_path / "straight.pt"
    fit(small_net(), digits, 2, checkpoint=straight, progress=False)
    old = tmp_path / "old.pt"
    _as_format_1(tmp_path / "straight.pt.prev", old)  # after epoch 1 of 2
    capsys.readouterr()
    model = small_net()
    history = fit(model, digits, 2, checkpoint=old, progress=False)
    assert [h["epoch"] for h in history] == [1, 2]
    for key, value in torch.load(straight, weights_only=True)["model"].items():
        assert torch.equal(model.state_dict()[key], value), key
    notes = [line for line in capsys.readouterr().out.splitlines() if "format 1" in line]
    assert len(notes) == 1, notes
    assert "not checked" in notes[0]


def test_loading_only_accepts_a_format_1_checkpoint(digits, finished_run, tmp_path, request):
    path = tmp_path / "run.pt"
    _as_format_1(finished_run[0], path)
    request.getfixturevalue("load_only")
    model = small_net()
    assert fit(model, digits, 1, checkpoint=path, progress=False) == finished_run[1]
    for key, value in torch.load(path, weights_only=True)["model"].items():
        assert torch.equal(model.state_dict()[key], value), key


def test_sync_batchnorm_changes_nothing_in_one_process(digits):
    plain = small_net()  # seeds the global generator: dropout draws the same masks in both
    first = fit(plain, digits, 1, progress=False)
    synced = small_net()
    second = fit(synced, digits, 1, sync_batchnorm=True, progress=False)
    assert [h["train_loss"] for h in first] == [h["train_loss"] for h in second]
    for key, value in plain.state_dict().items():
        assert torch.equal(synced.state_dict()[key], value), key
    assert type(synced[1]) is nn.BatchNorm2d


def test_plot_is_redrawn_each_epoch(digits, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append(a) or _Handle())
    history = fit(small_net(), digits, 2, progress=False, plot=True)
    assert len(shown) == 1 and _Handle.updates == 2
    figure = shown[0][0]
    loss_ax, acc_ax = figure.axes
    assert list(loss_ax.lines[0].get_xdata()) == [1, 2]
    assert list(acc_ax.lines[1].get_ydata()) == [h["test_accuracy"] for h in history]


class _Handle:
    updates = 0

    def update(self, figure):
        _Handle.updates += 1


# ----------------------------------------------------------------------------------------------
# Loading only: what the labs switch on while nbgrader grades a notebook


@pytest.fixture
def load_only():
    only_load_checkpoints(True, "this notebook is being graded")
    yield
    only_load_checkpoints(False)


def test_the_library_does_not_read_nbgraders_variable(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")  # the caller decides, not fit
    assert len(fit(small_net(), digits, 1, checkpoint=tmp_path / "run.pt", progress=False)) == 1


def test_loading_only_loads_the_submitted_checkpoint_and_never_trains(digits, tmp_path, request):
    path = tmp_path / "run.pt"
    history = fit(small_net(), digits, 2, checkpoint=path, progress=False)
    request.getfixturevalue("load_only")
    model = small_net()
    model.register_forward_hook(lambda *a: pytest.fail("fit trained while grading"))
    assert fit(model, digits, 2, checkpoint=path, progress=False) == history
    for key, value in torch.load(path, weights_only=True)["model"].items():
        assert torch.equal(model.state_dict()[key], value)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("none", "without checkpoint="),
        ("missing", "hand in run.pt"),
        ("unfinished", "holds 1 of 2 epochs"),
    ],
)
def test_loading_only_without_a_finished_checkpoint_is_one_line(
    digits, tmp_path, request, setup, message
):
    path = tmp_path / "run.pt"
    if setup == "unfinished":
        fit(small_net(), digits, 1, checkpoint=path, progress=False)
        torch.save({**torch.load(path, weights_only=True), "config": {}}, path)
    request.getfixturevalue("load_only")
    with pytest.raises(CheckpointError, match=message) as info:
        fit(small_net(), digits, 2, checkpoint=None if setup == "none" else path, progress=False)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("this notebook is being graded") or setup == "unfinished"


# ----------------------------------------------------------------------------------------------
# Real processes: a killed run resumes to the same weights; torchrun trains with DDP


def _train_command(checkpoint: Path, epochs: int = 8, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "convlab", "train", "resnet20", "--data", "digits", "--size", "16",
        "--epochs", str(epochs), "--batch-size", "64", "--checkpoint", str(checkpoint), "--quiet", *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


@pytest.mark.slow
def test_a_killed_run_resumes_to_bitwise_the_same_weights(tmp_path):
    straight = tmp_path / "straight.pt"
    subprocess.run(_train_command(straight), check=True, env=_env(), capture_output=True)

    resumed = tmp_path / "resumed.pt"
    kills = 0
    for _ in range(30):  # kill it mid-epoch, over and over, until it gets to the end
        process = subprocess.Popen(_train_command(resumed), env=_env(), stdout=subprocess.DEVNULL)
        epoch_before = _epoch(resumed)
        deadline = time.monotonic() + 120
        while (
            process.poll() is None
            and _epoch(resumed) == epoch_before
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        if process.poll() is not None:
            break
        time.sleep(0.3)  # well into the next epoch (or into writing its checkpoint)
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    assert process.returncode == 0
    assert kills >= 2, "the run was never interrupted: the test proved nothing"
    a = torch.load(straight, weights_only=True)
    b = torch.load(resumed, weights_only=True)
    assert a["epoch"] == b["epoch"] == 8
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), f"{key} differs after {kills} kills"
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def _epoch(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except Exception:
        return -1


@pytest.mark.slow
def test_torchrun_with_two_processes_matches_one_process(tmp_path):
    one = tmp_path / "one.json"
    subprocess.run(
        [*_train_command(tmp_path / "one.pt", 6), "--history", str(one)],
        check=True,
        env=_env(),
        capture_output=True,
    )
    two = tmp_path / "two.json"
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "convlab", "train",
         *_train_command(tmp_path / "two.pt", 6)[4:], "--history", str(two)],
        env=_env(),
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 processes" in result.stdout
    single = json.loads(one.read_text())[-1]["test_accuracy"]
    double = json.loads(two.read_text())[-1]["test_accuracy"]
    assert single > 0.85
    assert abs(single - double) <= 0.02, (single, double)


# ----------------------------------------------------------------------------------------------
# Defaults, switches and reporting


def test_default_optimizer_and_schedule_are_recorded_in_the_checkpoint(digits, tmp_path):
    path = tmp_path / "run.pt"
    fit(small_net(), digits, 2, checkpoint=path, progress=False)
    state = torch.load(path, weights_only=True)
    group = state["optimizer"]["param_groups"][0]
    assert group["nesterov"] is True and group["momentum"] == 0.9 and group["weight_decay"] == 5e-4
    assert state["scheduler"]["total_steps"] == 2 * len(
        digits.train
    )  # one-cycle, stepped per batch
    assert state["scheduler"]["_step_count"] == 2 * len(digits.train) + 1


def test_label_smoothing_is_applied_and_can_be_switched_off(digits):
    smooth = fit(small_net(), digits, 1, progress=False)
    plain = fit(small_net(), digits, 1, progress=False, label_smoothing=0.0)
    assert smooth[0]["train_loss"] != plain[0]["train_loss"]


class RecordsPrecision(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = small_net()
        self.seen = set()

    def forward(self, x):
        out = self.net(x)
        self.seen.add(out.dtype)
        return out


def test_mixed_precision_and_channels_last_are_switchable(digits):
    model = RecordsPrecision()
    fit(model, digits, 1, progress=False, mixed_precision=True, channels_last=True)
    channels_last = torch.channels_last
    assert model.seen == {torch.bfloat16}
    assert model.net[4].weight.is_contiguous(memory_format=channels_last)
    model = RecordsPrecision()
    fit(model, digits, 1, progress=False)  # on the CPU both default to off
    assert model.seen == {torch.float32}
    assert not model.net[4].weight.is_contiguous(memory_format=channels_last)


def test_progress_bar_is_shown(digits, capsys):
    fit(small_net(), digits, 1, progress=True)
    err = capsys.readouterr().err
    assert f"{len(digits.train)}/{len(digits.train)}" in err and "test=" in err


def test_learning_rate_of_an_optimizer_function_is_kept_unless_lr_is_given(digits):
    made = []

    def adam(groups):
        made.append(torch.optim.Adam(groups, lr=3e-3))
        return made[-1]

    fit(small_net(), digits, 1, optimizer=adam, progress=False)  # one-cycle peaks at Adam's
    assert {g["max_lr"] for g in made[-1].param_groups} == {3e-3}
    fit(small_net(), digits, 1, optimizer=adam, lr=0.02, progress=False)  # lr= replaces it
    assert {g["max_lr"] for g in made[-1].param_groups} == {0.02}
    fit(small_net(), digits, 1, optimizer=adam, schedule="cosine", progress=False)
    assert {g["initial_lr"] for g in made[-1].param_groups} == {3e-3}


# ----------------------------------------------------------------------------------------------
# GoogLeNet's auxiliary classifiers (Szegedy et al. 2014, Sec. 5)


class WithAuxiliaryHeads(nn.Module):
    """Three linear heads; while training, a GoogLeNetOutputs as GoogLeNet(aux_logits=True)."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.main, self.aux1, self.aux2 = (
            nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes)) for _ in range(3)
        )

    def forward(self, x):
        if not self.training:
            return self.main(x)
        return GoogLeNetOutputs(self.main(x), self.aux2(x), self.aux1(x))


def test_auxiliary_losses_are_added_with_weight_0_3():
    data = datasets.synthetic(
        num_samples=40, num_classes=4, image_size=8, in_channels=1, batch_size=64, device="cpu"
    )  # 32 training images: one batch
    model = WithAuxiliaryHeads(64, 4)
    before = copy.deepcopy(model)
    history = fit(model, data, 1, progress=False)
    data.train.set_epoch(0)
    (x, y), *rest = list(data.train)
    assert not rest
    main, aux2, aux1 = before.train()(x)
    loss = [F.cross_entropy(out, y, label_smoothing=0.1).item() for out in (main, aux1, aux2)]
    assert history[0]["train_loss"] == pytest.approx(loss[0] + 0.3 * (loss[1] + loss[2]), rel=1e-5)
    assert history[0]["test_accuracy"] == evaluate(model, data)  # main logits, evaluation mode


def test_fit_trains_googlenet_with_its_auxiliary_classifiers():
    data = datasets.synthetic(
        num_samples=20, num_classes=4, image_size=8, in_channels=1, batch_size=16, device="cpu"
    )  # 16 training images: one step, with Inception blocks at 4, 2 and 1 px
    torch.manual_seed(0)
    model = googlenet(num_classes=4, in_channels=1, small_input=True, aux_logits=True)
    before = copy.deepcopy(model.state_dict())
    history = fit(model, data, 1, lr=0.05, schedule="constant", progress=False)
    assert math.isfinite(history[0]["train_loss"])
    for head in ("aux1.fc2.weight", "aux2.fc2.weight", "fc.weight"):
        assert not torch.equal(model.state_dict()[head], before[head]), f"{head} was not trained"


# ----------------------------------------------------------------------------------------------
# Fault 8: a last training batch of one sample


class BatchSizes(nn.Module):
    """A network with batch norm on one value per channel (the head's ``BatchNorm1d``), which
    fails on a training batch of one sample; it records every batch's size, by mode."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 16),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Linear(16, num_classes),
        )
        self.sizes: dict[bool, list[int]] = {True: [], False: []}  # training -> batch sizes

    def forward(self, x):
        self.sizes[self.training].append(x.shape[0])
        return self.net(x)


def odd_data() -> datasets.ImageData:
    # 37 training images (9 batches of 4, then 1) and 9 test images (2 batches of 4, then 1)
    return datasets.synthetic(
        num_samples=46, num_classes=10, image_size=8, in_channels=1, batch_size=4, device="cpu"
    )


def test_a_last_training_batch_of_one_sample_is_trained_on():
    data = odd_data()
    assert (data.train.num_samples, data.test.num_samples) == (37, 9)
    model = BatchSizes(data.num_classes)
    history = fit(model, data, 2, lr=0.05, progress=False)
    assert len(history) == 2
    trained = model.sizes[True]
    assert min(trained) >= 2, f"a training batch of {min(trained)} sample"
    assert sum(trained) == 2 * 37, "a training sample was left out of an epoch"
    assert sum(model.sizes[False]) == 2 * 9, "the test accuracy did not count every test image"


class AlwaysClass(nn.Module):
    """Predicts ``label`` for every image."""

    def __init__(self, label: int, num_classes: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(F.one_hot(torch.tensor(label), num_classes).float())

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


def test_evaluation_counts_every_test_image_the_last_single_one_included():
    data = odd_data()
    labels = torch.arange(46)[-9:] % 10  # synthetic's labels cycle through the classes
    assert labels.tolist() == [7, 8, 9, 0, 1, 2, 3, 4, 5]  # the last one alone in its batch
    for label in (0, 5):  # 1 of 9 right; without the last image, 1/8 and 0/8
        assert evaluate(AlwaysClass(label, 10), data) == pytest.approx(1 / 9)
    assert evaluate(AlwaysClass(6, 10), data) == 0.0
