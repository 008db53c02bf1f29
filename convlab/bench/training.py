"""Comparisons 1 and 3: fit against a plain PyTorch loop and against d2l's Trainer, one LeNet.

d2l (``d2l.torch``, the d2l book's library) is imported here only, inside a function, when the
benchmark runs: it is the baseline, never a dependency of convlab.
"""

from __future__ import annotations

import contextlib
import gc
import io
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, TextIO

import torch
from torch import Tensor, nn

from convlab.bench.common import BATCH_SIZE, SEED, Sizes, _rebuild, _rotated, _summary
from convlab.data import ImageData, Loader, synthetic
from convlab.models.lenet import lenet5
from convlab.train import fit

__all__ = ["FIT_TARGET", "compare_training"]

# Peak learning rate of fit and the plain loop, and d2l's LeNet learning rate (its book's value).
LEARNING_RATE = 0.1
# Target of comparison 1: fit within 5% of the plain loop.
FIT_TARGET = 0.95


def _rate_after_first_epoch(stamps: list[float], end: float, images_per_epoch: int) -> float:
    """Images per second from the start of epoch 2 (``stamps[1]``) to ``end``."""
    timed_epochs = len(stamps) - 1
    return timed_epochs * images_per_epoch / (end - stamps[1])


class _StampedLoader(Loader):
    """A loader that notes the time whenever an epoch starts (fit calls ``set_epoch`` first)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamps: list[float] = []

    def set_epoch(self, epoch: int) -> None:
        """Note the time, then choose the epoch as usual.

        Args:
            epoch: the epoch number.
        """
        self.stamps.append(time.perf_counter())
        super().set_epoch(epoch)


class _StampedBatches:
    """A loader's epochs for d2l's Trainer: epoch ``k`` on the ``k``-th pass, start times noted."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader
        self.stamps: list[float] = []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        self.stamps.append(time.perf_counter())
        self.loader.set_epoch(len(self.stamps) - 1)
        return iter(self.loader)


def _plain_loop(model: nn.Module, data: ImageData, epochs: int) -> list[float]:
    """Train ``model`` the way a tutorial writes it out, with fit's recipe.

    SGD with Nesterov momentum 0.9 (fused on CUDA) and weight decay 5e-4 on weights only, a
    one-cycle learning-rate schedule (momentum held) stepped after every batch, cross-entropy
    with label smoothing 0.1, float32; training loss and accuracy summed on the device and read,
    with the test accuracy, once per epoch.

    Args:
        model: the network, already on the data's device.
        data: the data set; its loaders' batches are used as they come.
        epochs: passes over the training split.

    Returns:
        The time at the start of every epoch, then the time at the end.
    """
    device = data.train.device
    weights = [p for p in model.parameters() if p.dim() > 1]
    others = [p for p in model.parameters() if p.dim() <= 1]
    optimizer = torch.optim.SGD(
        [{"params": weights, "weight_decay": 5e-4}, {"params": others, "weight_decay": 0.0}],
        lr=LEARNING_RATE,
        momentum=0.9,
        nesterov=True,
        fused=device.type == "cuda",  # fit's choice: one kernel for all parameters on a GPU
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=LEARNING_RATE,
        total_steps=epochs * len(data.train),
        pct_start=0.25,
        anneal_strategy="linear",
        cycle_momentum=False,
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    stamps = []
    for epoch in range(epochs):
        stamps.append(time.perf_counter())
        model.train()
        data.train.set_epoch(epoch)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for x, y in data.train:
            out = model(x)
            loss = criterion(out, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(y)
            correct += (out.argmax(dim=1) == y).sum()
        model.eval()
        test_correct = torch.zeros((), device=device)
        with torch.no_grad():
            for x, y in data.test:
                test_correct += (model(x).argmax(dim=1) == y).sum()
        torch.stack([loss_sum, correct, test_correct]).tolist()  # the epoch's one read
    stamps.append(time.perf_counter())
    return stamps


def _time_fit(data: ImageData, epochs: int, device: torch.device) -> tuple[float, nn.Module]:
    torch.manual_seed(SEED)
    model = lenet5(num_classes=data.num_classes)
    loader = _rebuild(_StampedLoader, data.train)
    with contextlib.redirect_stdout(io.StringIO()):  # fit's one-line announcement
        fit(
            model,
            replace(data, train=loader),
            epochs,
            lr=LEARNING_RATE,
            mixed_precision=False,
            channels_last=False,
            device=device,
            progress=False,
            plot=False,
        )
    end = time.perf_counter()
    return _rate_after_first_epoch(loader.stamps, end, loader.num_samples), model


def _time_plain(data: ImageData, epochs: int, device: torch.device) -> tuple[float, nn.Module]:
    torch.manual_seed(SEED)
    model = lenet5(num_classes=data.num_classes).to(device)
    stamps = _plain_loop(model, data, epochs)
    return _rate_after_first_epoch(stamps[:-1], stamps[-1], data.train.num_samples), model


def _import_d2l() -> Any:
    """d2l's PyTorch library with matplotlib drawing off-screen, or None when it is missing."""
    import matplotlib

    matplotlib.use("Agg")  # d2l draws a figure per update; nothing is shown
    try:
        import d2l.torch as d2l_torch  # the benchmark's baseline, never a dependency of convlab
    except ImportError:
        return None
    return d2l_torch


def _time_d2l(
    d2l: Any, data: ImageData, epochs: int, device: torch.device
) -> tuple[float, nn.Module]:
    """d2l's Trainer on d2l's LeNet, fed the CPU batches of ``data`` (moved to CUDA by d2l)."""
    import matplotlib.pyplot as plt

    class Batches(d2l.DataModule):
        def __init__(self, train: _StampedBatches, test: Loader) -> None:
            super().__init__()
            self.train, self.test = train, test

        def get_dataloader(self, train: bool) -> Any:
            return self.train if train else self.test

    torch.manual_seed(SEED)
    model = d2l.LeNet(lr=LEARNING_RATE, num_classes=data.num_classes)
    model.apply_init([torch.zeros(1, *data.train.images.shape[1:])], d2l.init_cnn)  # lazy layers
    batches = _StampedBatches(data.train)
    trainer = d2l.Trainer(max_epochs=epochs, num_gpus=1 if device.type == "cuda" else 0)
    with contextlib.redirect_stdout(io.StringIO()):  # the text form of every redrawn figure
        trainer.fit(model, Batches(batches, data.test))
    end = time.perf_counter()
    if model.board.fig is not None:
        plt.close(model.board.fig)
    return _rate_after_first_epoch(batches.stamps, end, data.train.num_samples), model


def _lenet_check(d2l: Any) -> dict[str, Any]:
    """Whether d2l's LeNet and convlab's lenet5 are one architecture: layers, shapes, outputs."""
    ours = lenet5()
    theirs = d2l.LeNet(num_classes=10)
    theirs.apply_init([torch.zeros(1, 1, 28, 28)], d2l.init_cnn)

    def layers(model: nn.Module) -> list[str]:
        skip = {"AdaptiveAvgPool2d", "Flatten"}  # identity at 28x28 / a reshape: no computation
        leaves = [m for m in model.modules() if not list(m.children())]
        return [type(m).__name__ for m in leaves if type(m).__name__ not in skip]

    shapes_ours = [tuple(p.shape) for p in ours.parameters()]
    shapes_theirs = [tuple(p.shape) for p in theirs.parameters()]
    difference = float("nan")
    if shapes_ours == shapes_theirs:
        with torch.no_grad():
            for mine, other in zip(ours.parameters(), theirs.parameters(), strict=True):
                other.copy_(mine)
            x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(SEED))
            difference = (ours(x) - theirs(x)).abs().max().item()
    return {
        "same_layers": layers(ours) == layers(theirs),
        "layers": layers(ours),
        "same_parameter_shapes": shapes_ours == shapes_theirs,
        "parameters": [sum(p.numel() for p in m.parameters()) for m in (ours, theirs)],
        "max_output_difference_with_equal_weights": difference,
    }


# What differs between the two contenders of comparison 3, read from d2l 1.0.3's torch.py.
_D2L_DIFFERENCES = (
    "architecture: the same layers; convlab's lenet5 adds an AdaptiveAvgPool2d((5, 5)) that is "
    "the identity on 28x28 inputs, and flattens with torch.flatten where d2l uses nn.Flatten",
    "initialization: Xavier-uniform weights in both; convlab zeroes the biases, d2l.init_cnn "
    "leaves PyTorch's default bias initialization",
    "optimization: d2l's Trainer takes plain SGD (lr 0.1, no momentum, weight decay or schedule) "
    "and cross-entropy without smoothing; fit adds Nesterov momentum, weight decay, a one-cycle "
    "schedule and label smoothing 0.1: a little more arithmetic per step for fit",
    "reporting: d2l moves every loss to the CPU (on a GPU the CPU waits for it every step) and "
    "redraws a matplotlib figure twice per epoch for the training loss and once each for the "
    "validation loss and accuracy, whatever the size of an epoch; fit reads its metrics once "
    "per epoch and a non-finite flag every 25 steps",
    "batches: the same CPU batches (convlab's loader, one epoch per pass); on CUDA d2l copies "
    "each to the GPU, fit trains from a loader that keeps the data set on the GPU",
)


def compare_training(
    sizes: Sizes, device: torch.device, out: TextIO = sys.stdout
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Comparisons 1 and 3: fit, a plain loop and d2l's Trainer, one LeNet, runs interleaved.

    Args:
        sizes: how much work to do.
        device: where fit and the plain loop train (d2l too when it is CUDA, else the CPU).
        out: where progress lines go.

    Returns:
        ``(fit_vs_plain, fit_vs_d2l)``, two JSON-ready sections; the fit figures are shared.
    """
    data = synthetic(
        num_samples=sizes.train_samples,
        num_classes=10,
        image_size=28,
        in_channels=1,
        batch_size=BATCH_SIZE,
        device="cpu",
    )
    on_device = data.to(device)
    d2l = _import_d2l()
    d2l_device = device if device.type == "cuda" else torch.device("cpu")
    timers: dict[str, Callable[[], tuple[float, nn.Module]]] = {
        "fit": lambda: _time_fit(on_device, sizes.epochs, device),
        "plain": lambda: _time_plain(on_device, sizes.epochs, device),
    }
    if d2l is not None:
        timers["d2l"] = lambda: _time_d2l(d2l, data, sizes.epochs, d2l_device)
    rates: dict[str, list[float]] = {name: [] for name in timers}
    trained: dict[str, nn.Module] = {}
    for turn in range(sizes.repeats):
        for name in _rotated(list(timers), turn):
            gc.collect()  # the previous contender's garbage is not collected on this one's clock
            rate, trained[name] = timers[name]()
            rates[name].append(rate)
        print(f"  training runs: {turn + 1} of {sizes.repeats} rounds done", file=out, flush=True)

    # The plain loop does fit's work: from the same seed the two end with the same weights.
    weight_gap = max(
        (a - b).abs().max().item()
        for a, b in zip(trained["fit"].parameters(), trained["plain"].parameters(), strict=True)
    )

    workload = {
        "model": "lenet5 (sigmoid LeNet-5, 61,706 parameters)",
        "data": f"synthetic 1x28x28 uint8 images, {data.train.num_samples:,} training and "
        f"{data.test.num_samples:,} test",
        "batch_size": BATCH_SIZE,
        "epochs_per_run": sizes.epochs,
        "timed_epochs_per_run": sizes.epochs - 1,
        "runs": sizes.repeats,
        "precision": "float32, NCHW (mixed precision and channels-last off)",
        "device": str(device),
    }
    fit_rate = _summary(rates["fit"])
    plain_rate = _summary(rates["plain"])
    ratio = fit_rate["images_per_second"] / plain_rate["images_per_second"]
    per_round = [a / b for a, b in zip(rates["fit"], rates["plain"], strict=True)]
    fit_vs_plain = {
        **workload,
        "fit": fit_rate,
        "plain": plain_rate,
        "ratio": ratio,
        "ratio_of": "fit / plain",
        "ratio_per_round": _summary(per_round, "median"),
        "target": FIT_TARGET,
        "target_met": ratio >= FIT_TARGET,
        "max_weight_difference_after_a_run": weight_gap,
    }
    if d2l is None:
        fit_vs_d2l: dict[str, Any] = {
            "measured": False,
            "reason": "d2l is not installed (pip install --no-deps d2l==1.0.3)",
        }
    else:
        d2l_rate = _summary(rates["d2l"])
        fit_vs_d2l = {
            "measured": True,
            **workload,
            "d2l_device": str(d2l_device),
            "fit": fit_rate,
            "d2l": d2l_rate,
            "ratio": fit_rate["images_per_second"] / d2l_rate["images_per_second"],
            "ratio_of": "fit / d2l",
            "ratio_per_round": _summary(
                [a / b for a, b in zip(rates["fit"], rates["d2l"], strict=True)], "median"
            ),
            "architecture_check": _lenet_check(d2l),
            "differences": list(_D2L_DIFFERENCES),
        }
    return fit_vs_plain, fit_vs_d2l
