"""convlab.labs: modes, data, training with a checkpoint, grading by accuracy, thresholds."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

from convlab import labs
from convlab.labs import record, reference_runs, session
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


def test_thresholds_come_from_the_recorded_runs_and_never_from_thin_air():
    for quick in (True, False):
        entry = labs.recorded("lab3_batchnorm", quick=quick)
        mode = "--quick" if quick else ""
        assert entry is not None, (
            f"record it: python -m convlab.labs reference lab3_batchnorm {mode}"
        )
        low, high = labs.thresholds("lab3_batchnorm", quick=quick)
        accuracies = [run["accuracy"] for run in entry["runs"]]
        assert [run["seed"] for run in entry["runs"]] == list(labs.REFERENCE_SEEDS)
        assert low == pytest.approx(0.1) and low < high <= 1
        assert high == pytest.approx(min(accuracies) - labs.THRESHOLD_MARGIN)
        for run in entry["runs"]:
            assert run["machine"]["cpu"] and run["versions"]["torch"] and run["date"]
            assert len(run["load"]["before"]) == 3 and run["seconds"] > 0


def test_thresholds_need_every_seed(monkeypatch, tmp_path):
    path = tmp_path / "labs.json"
    runs = [{"seed": 0, "accuracy": 0.9}, {"seed": 2, "accuracy": 0.8}]
    path.write_text(json.dumps({"lab1_vgg": {"full": {"runs": runs, "low": 0.1, "high": 0.8}}}))
    monkeypatch.setattr(reference_runs, "RECORD_PATH", path)
    with pytest.raises(LookupError, match=r"seeds \[0, 2\], not all of \[0, 1, 2\]"):
        labs.thresholds("lab1_vgg", quick=False)
    with pytest.raises(LookupError, match=r"no recorded quick reference run.*--quick"):
        labs.thresholds("lab1_vgg", quick=True)
    runs.insert(1, {"seed": 1, "accuracy": 0.85})
    path.write_text(json.dumps({"lab1_vgg": {"full": {"runs": runs, "low": 0.1, "high": 0.8}}}))
    assert labs.thresholds("lab1_vgg", quick=False) == pytest.approx((0.1, 0.79))


def test_reference_network_is_the_lab_table_with_default_initialization():
    model = labs.LABS["lab1_vgg"].reference(10, 1)
    assert sum(p.numel() for p in model.parameters()) == 86_346
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    first = model.features[0]
    bound = 1 / (first.in_channels * 9) ** 0.5  # PyTorch's default: U(-1/sqrt(fan_in), ...)
    assert first.bias.abs().max() <= bound and first.bias.abs().max() > 0


def tiny_lab(epochs: int = 1) -> labs.LabSettings:
    return labs.LabSettings(
        "lab1_vgg", lambda k, c: nn.Sequential(nn.Flatten(), nn.Linear(c * 8 * 8, k)),
        quick_epochs=epochs, quick_lr=0.1, quick_size=8, quick_batch_size=256,
        data="fashion_mnist", epochs=1, lr=0.1, batch_size=256,
    )  # fmt: skip


def test_each_seed_varies_the_batch_order_as_well_as_the_weights(monkeypatch):
    monkeypatch.setitem(labs.LABS, "lab1_vgg", tiny_lab())
    starts = [labs.reference_start("lab1_vgg", quick=True, seed=seed) for seed in (0, 1)]
    (model0, data0, _), (model1, data1, _) = starts
    assert not torch.equal(data0.train.indices(0), data1.train.indices(0))
    assert not torch.equal(model0[1].weight, model1[1].weight)
    # seed 0 is the notebook's run: torch.manual_seed(0), lab.data(), then the network
    monkeypatch.setenv("CONVLAB_QUICK", "1")
    with warnings.catch_warnings():
        lab = labs.start("lab1_vgg")
    torch.manual_seed(0)
    assert torch.equal(lab.data().train.indices(0), data0.train.indices(0))
    assert torch.equal(labs.LABS["lab1_vgg"].reference(10, 1)[1].weight, model0[1].weight)


def test_recording_appends_each_seed_and_skips_what_it_has(monkeypatch, tmp_path):
    monkeypatch.setitem(labs.LABS, "lab1_vgg", tiny_lab())
    trained = []
    real_fit = record.fit

    def counting_fit(model, data, *args, **kwargs):
        trained.append(data.train.seed)
        return real_fit(model, data, *args, **kwargs)

    monkeypatch.setattr(record, "fit", counting_fit)
    path = tmp_path / "labs.json"
    lines: list[str] = []
    labs.record_reference("lab1_vgg", seeds=(0,), path=path, log=lines.append)
    stored = json.loads(path.read_text())["lab1_vgg"]["quick"]
    assert [run["seed"] for run in stored["runs"]] == [0]  # written as soon as the seed ended
    entry = labs.record_reference(
        "lab1_vgg", seeds=(0, 1), path=path, checkpoint_dir=tmp_path / "ckpt", log=lines.append
    )
    assert trained == [0, 1]  # seed 0 was not trained twice
    assert "seed 0: recorded already" in lines[1]
    assert entry == json.loads(path.read_text())["lab1_vgg"]["quick"]
    assert [run["seed"] for run in entry["runs"]] == [0, 1]
    assert entry["high"] == min(run["accuracy"] for run in entry["runs"]) and entry["low"] == 0.1
    assert len({run["fingerprint"] for run in entry["runs"]}) == 2
    assert entry["recipe"]["epochs"] == 1 and entry["recipe"]["data"] == "digits"
    # another recipe is another record: its runs replace the old ones
    monkeypatch.setitem(labs.LABS, "lab1_vgg", tiny_lab(epochs=2))
    entry = labs.record_reference("lab1_vgg", seeds=(1,), path=path)
    assert trained == [0, 1, 1] and [run["seed"] for run in entry["runs"]] == [1]
    assert entry["recipe"]["epochs"] == 2


def test_full_mode_on_a_cpu_says_how_long_training_takes_unless_graded(monkeypatch, tmp_path):
    path = tmp_path / "labs.json"
    timing = {
        "minutes": 4.5,
        "threads": 2,
        "date": "2026-12-05",
        "machine": {"cores": 2, "cpu": "Test CPU"},
    }
    path.write_text(json.dumps({"lab1_vgg": {"full": {"runs": [], "timing": timing}}}))
    monkeypatch.setattr(reference_runs, "RECORD_PATH", path)
    monkeypatch.setattr(session, "default_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(session, "keep_cuda_calls_on_cpu", lambda: None)  # no global patch here
    monkeypatch.delenv("CONVLAB_QUICK", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    said = []
    monkeypatch.setattr("builtins.print", lambda *args, **kw: said.append(" ".join(map(str, args))))
    with warnings.catch_warnings():
        labs.start("lab1_vgg")
        advice = "\n".join(said)
        assert "about 4.5 minutes on a 2-core Test CPU (2 threads" in advice
        assert "Runtime > Change runtime type" in advice
        said.clear()
        monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
        labs.start("lab1_vgg")
        assert not any("minutes" in line for line in said)  # grading prints nothing extra
        said.clear()
        monkeypatch.delenv("NBGRADER_EXECUTION")
        monkeypatch.setenv("CONVLAB_QUICK", "1")
        labs.start("lab1_vgg")
        assert not any("Change runtime type" in line for line in said)


@pytest.mark.parametrize("lab", sorted(labs.LABS))
def test_every_recorded_quick_run_starts_where_the_lab_starts_today(lab, monkeypatch):
    """The recorded thresholds hold only for the network and batch plan they were measured on:
    the same initial weights, parameter order and first batches at every seed (the fingerprint).
    A change of a lab's reference or of the data pipeline fails here until it is recorded again
    (``python -m convlab.labs reference <lab> --quick``)."""
    monkeypatch.setenv(labs.QUICK_ENV, "1")
    entry = labs.recorded(lab, quick=True)
    assert entry is not None and entry["recipe"] == labs.recipe(lab, quick=True)
    for run in entry["runs"]:
        model, data, _ = labs.reference_start(lab, quick=True, seed=run["seed"])
        assert labs.fingerprint(entry["recipe"], model, data) == run["fingerprint"], (
            f"{lab}'s seed {run['seed']} would start elsewhere than its recorded run"
        )


def test_a_graded_notebook_that_calls_fit_itself_trains_nothing(tmp_path, monkeypatch):
    """Under nbgrader, importing the labs switches fit to loading the handed-in checkpoint, so a
    notebook that calls fit directly (not lab.train) cannot train while it is graded."""
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    from ipc_kernel import execute

    cells = [
        "import torch\nfrom convlab.labs import start\nlab = start('lab3_batchnorm')",
        "from convlab.train import fit, CheckpointError\n"
        "model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))\n"
        "try:\n"
        "    fit(model, lab.data(), 1, checkpoint='mine.pt', progress=False, plot=False)\n"
        "except CheckpointError as error:\n"
        "    print('refused:', error)",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    monkeypatch.setenv(labs.QUICK_ENV, "1")
    for grading in (True, False):
        if grading:
            monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
        else:
            monkeypatch.delenv("NBGRADER_EXECUTION")
        ran = execute(nbformat.from_dict(notebook), tmp_path, timeout=300)
        said = "".join(out.get("text", "") for out in ran.cells[1].outputs)
        if grading:
            assert "refused: this notebook is being graded, so fit() does not train" in said
            assert not (tmp_path / "mine.pt").exists()
        else:
            assert "refused" not in said and (tmp_path / "mine.pt").exists(), said
