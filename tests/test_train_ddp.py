"""convlab.train under torchrun: two CPU processes on the gloo backend.

Each test launches ``torchrun --nproc_per_node 2`` on this very file, whose ``__main__`` part is
the worker: every rank writes what it saw to ``rank<r>.json`` and the test compares the ranks.
The data are a few dozen 8x8 synthetic images and the network is tiny, so a launch costs the
start of two Python processes with torch (10-20 s on a busy 2-core machine), not training.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import random
import socket
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from convlab import data as datasets
from convlab.train import evaluate, fit, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("torchrun")]


def bn_net(num_classes: int = 4) -> nn.Module:
    """A network whose batch-norm statistics and dropout masks differ between ranks."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(8, num_classes),
    )


def tiny_data() -> datasets.ImageData:
    # 64 training images (32 per rank, 8 steps of 4) and 16 test images
    return datasets.synthetic(
        num_samples=80, num_classes=4, image_size=8, in_channels=1, batch_size=8, device="cpu"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(mode: str, out: Path) -> list[dict[str, Any]]:
    """Run this file's worker in ``mode`` on two gloo processes; each rank's report."""
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), __file__, mode, str(out),
    ]  # fmt: skip
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:  # the ranks' own tracebacks, not torchrun's summary
        ranks = [line for line in result.stderr.splitlines() if line.startswith("[rank")]
        raise RuntimeError("\n".join(ranks)[-4000:] or result.stderr[-4000:])
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


# ----------------------------------------------------------------------------------------------
# Fault 1: the data follow the rank's device, and the caller keeps no second copy


@pytest.fixture(scope="module")
def device_reports(tmp_path_factory):
    return _torchrun("device", tmp_path_factory.mktemp("device"))


def test_data_built_before_fit_move_to_the_ranks_device_without_a_copy_left(device_reports):
    for rank, report in enumerate(device_reports):
        assert report["batches"] == "meta", (
            f"rank {rank} trained on batches from {report['batches']}"
        )
        assert (report["train"], report["test"]) == ("meta", "meta"), (
            f"rank {rank}: the caller's data stayed on {report['train']} and {report['test']}, "
            "a second full copy beside the one on the rank's device"
        )
        assert not report["original_alive"], f"rank {rank} still holds the data as built"


# ----------------------------------------------------------------------------------------------
# Faults 2 and 4: batch-norm statistics and random states across ranks


@pytest.fixture(scope="module")
def run_reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return out, _torchrun("run", out)


def test_ranks_evaluate_and_save_the_same_batch_norm_statistics(run_reports):
    out, reports = run_reports
    first, second = (r["buffers"] for r in reports)
    assert first.keys() == second.keys() and "1.running_mean" in first
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, f"after fit, rank 1's buffers {differ} differ from rank 0's"
    assert reports[0]["test_accuracy"] == reports[1]["test_accuracy"]
    model = bn_net()
    saved = load_checkpoint(out / "run.pt", model)["model"]  # written by rank 0
    assert all(saved[name].tolist() == first[name] for name in first), "saved other statistics"
    assert evaluate(model, tiny_data()) == reports[0]["test_accuracy"], (
        "the reported test accuracy is not that of the saved network"
    )


def test_resuming_gives_every_rank_its_own_random_state_back(run_reports):
    _, reports = run_reports
    assert reports[0]["before"] != reports[1]["before"], "the ranks drew the same numbers"
    for rank, report in enumerate(reports):
        assert report["after_resume"] == report["before"], (
            f"rank {rank} resumed with another random state"
            + (" (rank 0's)" if report["after_resume"] == reports[0]["before"] else "")
        )


def test_sync_batchnorm_on_the_cpu_is_one_clear_error(run_reports):
    _, reports = run_reports
    for report in reports:
        assert report["sync_error"].startswith("ValueError: sync_batchnorm=True needs GPUs")
        assert "\n" not in report["sync_error"]


# ----------------------------------------------------------------------------------------------
# Fault 8: a rank's last training batch of one sample


def head_bn_net(num_classes: int = 4) -> nn.Module:
    """Batch norm on one value per channel, which fails on a training batch of one sample."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.BatchNorm1d(8),
        nn.Linear(8, num_classes),
    )


def odd_data() -> datasets.ImageData:
    # 50 training images: 25 per rank, 6 steps of 4 and then 1; 12 test images, 6 per rank
    return datasets.synthetic(
        num_samples=62, num_classes=4, image_size=8, in_channels=1, batch_size=8, device="cpu"
    )


def test_a_ranks_last_training_batch_of_one_sample_is_trained_on(run_reports):
    _, reports = run_reports
    for rank, report in enumerate(reports):
        assert report["odd_error"] == "none", f"rank {rank}: {report['odd_error']}"
        assert min(report["odd_train_sizes"]) >= 2, f"rank {rank}: {report['odd_train_sizes']}"
        assert sum(report["odd_train_sizes"]) == 25, "a training sample was left out"
        assert sum(report["odd_test_sizes"]) == 6, "a test image was left out"


# ----------------------------------------------------------------------------------------------
# The worker: torchrun runs this file with a mode and an output folder


class _Stop(Exception):
    """Raised by the probe network's first forward pass: the test has seen what it needs."""


class _Probe(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 2)
        self.seen: list[torch.device] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.device)
        raise _Stop


def _draws() -> list[Any]:
    return [torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()]


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _device_worker(out: Path) -> dict[str, Any]:
    """Every rank is given the meta device as its own; the data are built on the CPU before fit.

    On a CPU-only machine there is no second real device: meta stands for the rank's GPU (its
    tensors have shapes and no values, enough to see where batches come from). Meta tensors
    cannot be all-reduced, so DistributedDataParallel is left out; the probe stops fit at its
    first batch.
    """
    from convlab import train

    start = train._Distributed.start
    train._Distributed.start = classmethod(  # type: ignore[method-assign]
        lambda cls: dataclasses.replace(start(), device=torch.device("meta"))
    )
    train.DistributedDataParallel = lambda module, **kwargs: module  # type: ignore[misc,assignment]
    data = datasets.synthetic(
        num_samples=40, num_classes=2, image_size=8, in_channels=1, batch_size=8, device="cpu"
    )
    original = weakref.ref(data.train.images)
    probe = _Probe()
    try:
        fit(probe, data, 1, schedule="constant", progress=False)
    except _Stop:
        pass
    gc.collect()
    return {
        "batches": str(probe.seen[0].type) if probe.seen else "none",
        "train": data.train.device.type,
        "test": data.test.device.type,
        "original_alive": original() is not None,
    }


def _run_worker(out: Path) -> dict[str, Any]:
    rank = int(os.environ["RANK"])
    data = tiny_data()
    model = bn_net()
    _seed(10 + rank)  # each rank its own stream, as after torch.manual_seed(seed + rank)
    history = fit(model, data, 1, lr=0.05, checkpoint=out / "run.pt", progress=False)
    report: dict[str, Any] = {
        "buffers": {name: b.tolist() for name, b in model.named_buffers()},
        "test_accuracy": history[-1]["test_accuracy"],
        "before": _draws(),
    }
    _seed(999)
    fit(bn_net(), data, 1, lr=0.05, checkpoint=out / "run.pt", progress=False)  # finished
    report["after_resume"] = _draws()
    try:
        fit(bn_net(), data, 1, sync_batchnorm=True, progress=False)  # type: ignore[call-arg]
        report["sync_error"] = "none"
    except Exception as error:
        report["sync_error"] = f"{type(error).__name__}: {error}"
    model = head_bn_net()
    sizes: dict[bool, list[int]] = {True: [], False: []}
    model.register_forward_pre_hook(lambda m, args: sizes[m.training].append(len(args[0])))
    try:
        fit(model, odd_data(), 1, lr=0.05, progress=False)
        report["odd_error"] = "none"
    except Exception as error:
        report["odd_error"] = f"{type(error).__name__}: {error}"
    report["odd_train_sizes"], report["odd_test_sizes"] = sizes[True], sizes[False]
    return report


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2])
    worker = {"device": _device_worker, "run": _run_worker}[mode]
    result = worker(folder)
    (folder / f"rank{os.environ['RANK']}.json").write_text(json.dumps(result))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
