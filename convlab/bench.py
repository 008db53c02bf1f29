"""Speed measured side by side: ``python -m convlab bench``.

Each comparison is a ratio of two throughputs measured in the same process, minutes apart, on
the same model, data and batch size:

1. :func:`~convlab.train.fit` against a plain PyTorch training loop written out by hand: what
   fit's bookkeeping (non-finite check, metrics, schedule, reporting) costs per epoch.
2. The device-resident :class:`~convlab.data.Loader` against torchvision's ``DataLoader`` with
   per-image ``ToTensor`` and ``Normalize``, the usual Fashion-MNIST pipeline of tutorials.
3. :func:`~convlab.train.fit` against the ``Trainer`` of the d2l book's library (``d2l.torch``)
   on the same LeNet, its live plot included.

On CUDA it also times ResNet-18 with and without mixed precision and channels-last layout, and
trains an epoch under ``torch.cuda.set_sync_debug_mode("error")``, which raises on any operation
that makes the CPU wait for the GPU. Without a GPU those rows say so: nothing is estimated.

How the clock is read is stated in :data:`METHOD`, which the report prints and the JSON keeps.

torchvision and d2l are the baselines here: both are imported only when the benchmark runs.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO, TypeVar

import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from convlab import models
from convlab.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, ImageData, Loader, synthetic
from convlab.device import default_device
from convlab.models.lenet import lenet5
from convlab.recipes import cpu_name
from convlab.train import fit

__all__ = [
    "BATCH_SIZE",
    "FIT_TARGET",
    "FULL",
    "GPU_BATCH_SIZE",
    "LOADER_TARGET",
    "METHOD",
    "NOISE_LIMIT",
    "QUICK",
    "Sizes",
    "compare_loaders",
    "compare_training",
    "machine_info",
    "main",
    "measure_gpu",
    "report",
    "run",
]

METHOD = (
    "A training run builds a freshly seeded model and trains it for a few epochs; the clock "
    "starts when the run's second epoch starts and stops when the run returns, so the first "
    "epoch (warm-up: allocator, kernels, caches) is never timed and the evaluation after each "
    "later epoch is (every contender evaluates its test split once per epoch); images/s counts "
    "the training images of the timed epochs. Contenders take turns in a rotating order "
    "(A B C, B C A, C A B, ...), so a slow spell of a shared machine falls on all of them; "
    "garbage is collected before every run, off the clock. Each throughput is the median over "
    "runs and each ratio is a quotient of two medians (the median of each round's own ratio is "
    "given beside it). Loaders are timed one full epoch at a time, after one untimed epoch "
    "each, in the same rotation; the clock includes making the iterator and ends after a sum "
    "of every batch is read. The number of CPU threads is fixed with torch.set_num_threads for "
    "the whole benchmark."
)

# Images per batch in comparisons 1-3: the batch size of the LeNet chapter of the course and of d2l.
BATCH_SIZE = 128
# Images per batch of the GPU measurements (ResNet-18 on 32x32 images).
GPU_BATCH_SIZE = 256
# Peak learning rate of fit and the plain loop, and d2l's LeNet learning rate (its book's value).
LEARNING_RATE = 0.1
SEED = 0
# Targets of the comparisons: fit within 5% of the plain loop; the loader at least 3x torchvision's.
FIT_TARGET = 0.95
LOADER_TARGET = 3.0
# Runs of one contender further apart than this (fastest / slowest) mean the machine was busy
# with something else: the report says so and the figures should not be quoted.
NOISE_LIMIT = 1.25
# The worker counts compared: none, and the 2 CPUs of a Colab runtime.
DATALOADER_WORKERS = (0, 2)


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does.

    Attributes:
        train_samples: synthetic 28x28 images of comparisons 1 and 3; a fifth is the test split.
        epochs: epochs per training run; the first is not timed.
        repeats: training runs per contender.
        loader_images: images of the loader comparison (60,000: Fashion-MNIST's training split).
        loader_repeats: timed epochs per loader.
        gpu_samples: synthetic 32x32 images of the GPU measurements; a fifth is the test split.
        gpu_epochs: epochs per GPU run; the first is not timed.
        gpu_repeats: GPU runs per configuration.
    """

    train_samples: int
    epochs: int
    repeats: int
    loader_images: int
    loader_repeats: int
    gpu_samples: int
    gpu_epochs: int
    gpu_repeats: int


# About 4 minutes on 2 idle CPU cores. 32,000 training images are 250 steps per epoch: long
# enough that per-epoch costs (d2l redraws its plot a fixed number of times per epoch) weigh
# about as they do on a real Fashion-MNIST epoch (469 steps), not more than twice that. Many
# short rounds rather than a few long ones: the speed of a shared virtual machine drifts over
# tens of seconds, and a round's contenders then run under the same conditions.
FULL = Sizes(
    train_samples=40_000,
    epochs=2,
    repeats=9,
    loader_images=60_000,
    loader_repeats=3,
    gpu_samples=25_600,
    gpu_epochs=3,
    gpu_repeats=3,
)
# A smoke test of every code path (about 20-40 s on 2 cores): its figures are not meaningful.
QUICK = Sizes(
    train_samples=2_000,
    epochs=2,
    repeats=2,
    loader_images=2_000,
    loader_repeats=1,
    gpu_samples=2_560,
    gpu_epochs=2,
    gpu_repeats=1,
)

L = TypeVar("L", bound=Loader)


# ----------------------------------------------------------------------------------------------
# Timing helpers


def _rotated(names: Sequence[str], turn: int) -> list[str]:
    """The contenders in the order of repetition ``turn``: A B C, then B C A, then C A B."""
    k = turn % len(names)
    return [*names[k:], *names[:k]]


def _summary(rates: list[float], unit: str = "images_per_second") -> dict[str, Any]:
    """The median of the runs, the runs, and how far apart they are (fastest / slowest)."""
    return {unit: statistics.median(rates), "runs": rates, "spread": max(rates) / min(rates)}


def _noisy(results: dict[str, Any]) -> list[str]:
    """Every contender whose runs differ by more than :data:`NOISE_LIMIT` (fastest / slowest)."""
    found = []
    for section_name, section in results.items():
        if not isinstance(section, dict):
            continue
        for name, entry in section.items():
            if isinstance(entry, dict) and entry.get("spread", 1.0) > NOISE_LIMIT:
                found.append(f"{section_name}.{name} (x{entry['spread']:.2f})")
    return found


def _rate_after_first_epoch(stamps: list[float], end: float, images_per_epoch: int) -> float:
    """Images per second from the start of epoch 2 (``stamps[1]``) to ``end``."""
    timed_epochs = len(stamps) - 1
    return timed_epochs * images_per_epoch / (end - stamps[1])


def _rebuild(cls: type[L], loader: Loader) -> L:
    """A loader of class ``cls`` over the same tensors, with the same settings."""
    return cls(
        loader.images,
        loader.labels,
        batch_size=loader.batch_size,
        mean=loader.mean,
        std=loader.std,
        shuffle=loader.shuffle,
        drop_last=loader.drop_last,
        augment=loader.augment,
        resize=loader.resize,
        seed=loader.seed,
    )


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


# ----------------------------------------------------------------------------------------------
# Comparisons 1 and 3: fit, a plain loop, d2l's Trainer


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


# ----------------------------------------------------------------------------------------------
# Comparison 2: the device-resident loader against torchvision's DataLoader


class _PILImages(Dataset[tuple[Any, int]]):
    """Grey images handed out one by one as PIL images, as torchvision's FashionMNIST does.

    Args:
        images: ``uint8`` images.
        labels: class indices.
        transform: applied to each PIL image (``ToTensor`` then ``Normalize``).

    Shape:
        images: ``(N, H, W)``; labels: ``(N,)``.
    """

    def __init__(self, images: Tensor, labels: Tensor, transform: Callable[[Any], Any]) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = Image.fromarray(self.images[index].numpy())  # 2-D uint8: mode "L"
        return self.transform(image), int(self.labels[index])


def _epoch_rate(batches: Callable[[], Any], count: int, device: torch.device) -> float:
    """Images per second of one pass over ``batches()``, each batch summed on ``device``."""
    start = time.perf_counter()
    checksum = torch.zeros((), device=device)
    for x, y in batches():
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        checksum += x.sum() + y.sum()
    checksum.item()  # every batch made and summed
    return count / (time.perf_counter() - start)


def compare_loaders(sizes: Sizes, device: torch.device, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Comparison 2: one epoch of convlab's Loader against torchvision's DataLoader.

    The data: ``sizes.loader_images`` random ``uint8`` 28x28 images and labels, shaped like
    Fashion-MNIST's training split. Both sides shuffle, batch, convert to ``float32`` and
    normalize with Fashion-MNIST's mean and standard deviation, and end on ``device``.

    Args:
        sizes: how much work to do.
        device: where the batches must arrive.
        out: where progress lines go.

    Returns:
        A JSON-ready section: images per second of each loader and the ratios.
    """
    from torchvision import transforms  # the baseline, loaded only here

    g = torch.Generator().manual_seed(SEED)
    n = sizes.loader_images
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)

    ours = Loader(
        images.unsqueeze(1).to(device),
        labels.to(device),
        batch_size=BATCH_SIZE,
        mean=FASHION_MNIST_MEAN,
        std=FASHION_MNIST_STD,
        shuffle=True,
        seed=SEED,
    )
    pipeline = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(FASHION_MNIST_MEAN, FASHION_MNIST_STD)]
    )
    dataset = _PILImages(images, labels, pipeline)
    theirs = {
        f"torchvision_workers_{w}": DataLoader(
            dataset,
            batch_size=BATCH_SIZE,
            shuffle=True,
            num_workers=w,
            persistent_workers=w > 0,  # workers start once, in the untimed epoch
            pin_memory=device.type == "cuda",
        )
        for w in DATALOADER_WORKERS
    }

    def convlab_epoch() -> Any:
        ours.set_epoch(ours.epoch + 1)
        return ours

    passes: dict[str, Callable[[], Any]] = {"convlab": convlab_epoch}
    passes.update({name: loader.__iter__ for name, loader in theirs.items()})
    for batches in passes.values():  # untimed first epoch of each
        _epoch_rate(batches, n, device)
    rates: dict[str, list[float]] = {name: [] for name in passes}
    for turn in range(sizes.loader_repeats):
        for name in _rotated(list(passes), turn):
            gc.collect()
            rates[name].append(_epoch_rate(passes[name], n, device))
    print(f"  loaders: {sizes.loader_repeats} timed epochs each done", file=out, flush=True)
    del theirs, passes  # shuts the persistent workers down

    section: dict[str, Any] = {
        "data": f"{n:,} random uint8 1x28x28 images (Fashion-MNIST's shape), labels 0-9",
        "batch_size": BATCH_SIZE,
        "timed_epochs": sizes.loader_repeats,
        "device": str(device),
        "convlab": _summary(rates["convlab"]),
        "convlab_pipeline": "Loader over the uint8 tensor on the device: shuffle, gather, "
        "float32, normalize, per batch",
        "torchvision_pipeline": "Dataset returning PIL images, transforms.Compose([ToTensor(), "
        "Normalize(mean, std)]), DataLoader(shuffle=True, persistent_workers when workers > 0"
        + (", pin_memory=True, batches copied to the GPU" if device.type == "cuda" else "")
        + ")",
    }
    for w in DATALOADER_WORKERS:
        name = f"torchvision_workers_{w}"
        section[name] = _summary(rates[name])
        section[f"ratio_workers_{w}"] = (
            section["convlab"]["images_per_second"] / section[name]["images_per_second"]
        )
    best = max(
        (f"torchvision_workers_{w}" for w in DATALOADER_WORKERS),
        key=lambda name: section[name]["images_per_second"],
    )
    section["baseline"] = best
    section["ratio"] = section["convlab"]["images_per_second"] / section[best]["images_per_second"]
    section["ratio_of"] = f"convlab / {best} (the faster torchvision setting on this machine)"
    section["target"] = LOADER_TARGET
    section["target_met"] = section["ratio"] >= LOADER_TARGET
    return section


# ----------------------------------------------------------------------------------------------
# GPU only: mixed precision, channels-last, and no waiting inside an epoch


class _SyncWatchedLoader(Loader):
    """A loader that turns CUDA's sync debug mode to ``"error"`` while an epoch's steps run.

    The epoch is planned (its one host-to-device copy of the order) before the mode is set, and
    the mode is reset before the last batch is handed out: fit reads its metrics and its
    non-finite flag after the last step by design.
    """

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        batches = super().__iter__()
        return self._watched(batches)

    def _watched(self, batches: Iterator[tuple[Tensor, Tensor]]) -> Iterator[tuple[Tensor, Tensor]]:
        last = len(self) - 1
        torch.cuda.set_sync_debug_mode("error")
        try:
            for i, batch in enumerate(batches):
                if i == last:
                    torch.cuda.set_sync_debug_mode("default")
                yield batch
        finally:
            torch.cuda.set_sync_debug_mode("default")


def _resnet18_small() -> nn.Module:
    torch.manual_seed(SEED)
    return models.create("resnet18", **models.spec("resnet18").small, num_classes=10)


def measure_gpu(sizes: Sizes, device: torch.device, out: TextIO = sys.stdout) -> dict[str, Any]:
    """ResNet-18 steps/s with and without mixed precision and channels-last; a sync check.

    Args:
        sizes: how much work to do.
        device: the training device; anything but CUDA returns a "not measured" section.
        out: where progress lines go.

    Returns:
        A JSON-ready section; ``measured`` is False without CUDA.
    """
    if device.type != "cuda":
        reason = (
            "no GPU: CUDA is not available"
            if not torch.cuda.is_available()
            else f"--device is {device.type}"
        )
        return {"measured": False, "reason": reason}
    data = synthetic(
        num_samples=sizes.gpu_samples,
        num_classes=10,
        image_size=32,
        in_channels=3,
        batch_size=GPU_BATCH_SIZE,
        device=device,
    )
    steps = len(data.train)
    configs = {
        "float32": (False, False),
        "channels_last": (False, True),
        "mixed_precision": (True, False),
        "mixed_precision_channels_last": (True, True),
    }
    rates: dict[str, list[float]] = {name: [] for name in configs}
    announced: dict[str, str] = {}
    for turn in range(sizes.gpu_repeats):
        for name in _rotated(list(configs), turn):
            amp, channels_last = configs[name]
            gc.collect()
            text = io.StringIO()
            with contextlib.redirect_stdout(text):
                history = fit(
                    _resnet18_small(),
                    data,
                    sizes.gpu_epochs,
                    mixed_precision=amp,
                    channels_last=channels_last,
                    device=device,
                    progress=False,
                    plot=False,
                )
            announced[name] = text.getvalue().strip()  # "training on <GPU>, bfloat16 ..."
            timed = history[1:]  # fit times each training epoch up to its read of the metrics
            rates[name].append(steps * len(timed) / sum(h["seconds"] for h in timed))
    print("  GPU configurations done", file=out, flush=True)

    watched = replace(data, train=_rebuild(_SyncWatchedLoader, data.train))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            fit(
                _resnet18_small(),
                watched,
                1,
                device=device,
                check_every=steps,
                progress=False,
                plot=False,
            )
        error = None
    except RuntimeError as caught:
        error = str(caught).splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode("default")

    base = statistics.median(rates["float32"])
    section: dict[str, Any] = {
        "measured": True,
        "gpu": torch.cuda.get_device_name(device),
        "model": "resnet18 small_input=True, 10 classes",
        "data": f"synthetic 3x32x32 images, {data.train.num_samples:,} training",
        "batch_size": GPU_BATCH_SIZE,
        "fit_settings": announced,
        "epochs_per_run": sizes.gpu_epochs,
        "runs": sizes.gpu_repeats,
        "timing": "fit's own clock per training epoch (ends with the epoch's one read); "
        "first epoch of each run excluded",
    }
    for name in configs:
        section[name] = _summary(rates[name], "steps_per_second")
        section[name]["speedup_over_float32"] = section[name]["steps_per_second"] / base
    section["sync_check"] = {
        "passed": error is None,
        "steps_watched": steps - 1,
        "steps_per_epoch": steps,
        "settings": "fit defaults (mixed precision, channels-last), check_every=steps per epoch",
        "error": error,
    }
    return section


# ----------------------------------------------------------------------------------------------
# Machine facts, the whole run, the report


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def machine_info(device: torch.device) -> dict[str, Any]:
    """What a benchmark figure must be printed beside: machine, versions, date.

    Args:
        device: the device the benchmark trains on.

    Returns:
        CPU model and cores, device and GPU name, library versions, date and load average.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cuda = torch.cuda.is_available()
    return {
        "cpu": cpu_name(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "cuda_available": cuda,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "numpy": _version("numpy"),
        "pillow": _version("pillow"),
        "matplotlib": _version("matplotlib"),
        "d2l": _version("d2l"),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_1_5_15_min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def run(
    *,
    quick: bool = False,
    device: torch.device | str | None = None,
    threads: int | None = None,
    out: TextIO = sys.stdout,
) -> dict[str, Any]:
    """Run every measurement and return them with the machine's facts.

    Args:
        quick: tiny sizes (:data:`QUICK`): checks the code paths, its figures mean little.
        device: where to train (default: CUDA, then MPS, then CPU).
        threads: CPU threads for torch (default: every core this process may use).
        out: where progress lines go.

    Returns:
        A JSON-ready dict: ``machine``, ``method``, ``fit_vs_plain``, ``loader_vs_torchvision``,
        ``fit_vs_d2l``, ``gpu``, ``seconds`` and ``noisy`` (contenders whose runs disagree).
    """
    sizes = QUICK if quick else FULL
    device = default_device() if device is None else torch.device(device)
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        threads = threads or os.cpu_count() or 1
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        results: dict[str, Any] = {
            "mode": "quick" if quick else "full",
            "machine": machine_info(device),
            "sizes": asdict(sizes),
            "method": METHOD,
        }
        print(_heading(results), file=out, flush=True)
        results["fit_vs_plain"], results["fit_vs_d2l"] = compare_training(sizes, device, out)
        results["loader_vs_torchvision"] = compare_loaders(sizes, device, out)
        results["gpu"] = measure_gpu(sizes, device, out)
    finally:
        torch.set_num_threads(previous_threads)
    results["seconds"] = time.perf_counter() - start
    results["noisy"] = _noisy(results)
    load = results["machine"]["load_average_1_5_15_min"]
    results["machine"]["load_average_after"] = list(os.getloadavg()) if load is not None else None
    return results


def _heading(results: dict[str, Any]) -> str:
    m = results["machine"]
    gpu = m["gpu"] or "no GPU"
    return (
        f"convlab bench ({results['mode']}), {m['date']}\n"
        f"machine: {m['cpu']}, {m['usable_cores']} cores, torch on {m['torch_threads']} threads, "
        f"{gpu}; training on {m['device']}\n"
        f"versions: python {m['python']}, torch {m['torch']}, torchvision {m['torchvision']}, "
        f"numpy {m['numpy']}, d2l {m['d2l']}\n"
        f"method: {results['method']}\n"
    )


def _met(section: dict[str, Any]) -> str:
    verdict = "met" if section["target_met"] else "NOT met"
    return f"target >= {section['target']:g}: {verdict}"


def report(results: dict[str, Any]) -> str:
    """The measurements as a few lines of text.

    Args:
        results: the output of :func:`run`.

    Returns:
        The text, one comparison per paragraph.
    """

    def rate(section: dict[str, Any], unit: str = "images_per_second") -> str:
        runs = ", ".join(f"{r:,.0f}" for r in section["runs"])
        label = unit.split("_")[0] + "/s"
        return f"{section[unit]:>10,.1f} {label} (runs: {runs})"

    a = results["fit_vs_plain"]
    lines = [
        f"1. fit against a plain PyTorch loop: {a['model']}, {a['data']}, batch {a['batch_size']}, "
        f"{a['precision']}, {a['device']}",
        f"   fit          {rate(a['fit'])}",
        f"   plain loop   {rate(a['plain'])}",
        f"   ratio fit / plain = {a['ratio']:.3f}   ({_met(a)}); median of the rounds' own "
        f"ratios {a['ratio_per_round']['median']:.3f}",
        f"   largest weight difference after a run from the same seed: "
        f"{a['max_weight_difference_after_a_run']:.1e}",
        "",
    ]
    b = results["loader_vs_torchvision"]
    lines += [
        f"2. convlab's loader against torchvision's DataLoader: {b['data']}, batch "
        f"{b['batch_size']}, {b['device']}",
        f"   convlab Loader                 {rate(b['convlab'])}",
    ]
    for w in DATALOADER_WORKERS:
        section = b[f"torchvision_workers_{w}"]
        lines.append(
            f"   DataLoader, num_workers={w}     {rate(section)}   "
            f"ratio {b[f'ratio_workers_{w}']:.1f}x"
        )
    lines += [f"   ratio {b['ratio_of']} = {b['ratio']:.1f}x   ({_met(b)})", ""]
    c = results["fit_vs_d2l"]
    if c["measured"]:
        check = c["architecture_check"]
        same = check["same_layers"] and check["same_parameter_shapes"]
        lines += [
            f"3. fit against d2l's Trainer (LeNet; d2l on {c['d2l_device']}): same data, batch "
            f"and epochs as 1.",
            f"   fit          {rate(c['fit'])}",
            f"   d2l Trainer  {rate(c['d2l'])}",
            f"   ratio fit / d2l = {c['ratio']:.3f}; median of the rounds' own ratios "
            f"{c['ratio_per_round']['median']:.3f}",
            f"   architectures {'match' if same else 'DIFFER'}: parameters "
            f"{check['parameters'][0]:,} and {check['parameters'][1]:,}, outputs with equal "
            f"weights differ by {check['max_output_difference_with_equal_weights']:.1e}",
            "",
        ]
    else:
        lines += [f"3. fit against d2l's Trainer: not measured ({c['reason']})", ""]
    g = results["gpu"]
    if g["measured"]:
        lines.append(
            f"4. GPU ({g['gpu']}): {g['model']}, batch {g['batch_size']}; fit said: "
            f"{g['fit_settings']['mixed_precision_channels_last']}"
        )
        for name in (
            "float32",
            "channels_last",
            "mixed_precision",
            "mixed_precision_channels_last",
        ):
            lines.append(
                f"   {name:<31}{rate(g[name], 'steps_per_second')}   "
                f"x{g[name]['speedup_over_float32']:.2f}"
            )
        sync = g["sync_check"]
        verdict = "PASS" if sync["passed"] else f"FAIL ({sync['error']})"
        lines.append(
            f"   no synchronization in {sync['steps_watched']} of {sync['steps_per_epoch']} steps "
            f"under set_sync_debug_mode('error'): {verdict}"
        )
    else:
        lines.append(
            f"4. GPU: mixed precision, channels-last and the sync check were not measured "
            f"({g['reason']})"
        )
    if results["noisy"]:
        lines.append(
            f"\nWARNING: runs of {', '.join(results['noisy'])} differ by more than "
            f"x{NOISE_LIMIT} (fastest / slowest): the machine's speed changed during the "
            f"benchmark (other work, or a shared virtual machine; load average "
            f"{results['machine']['load_average_1_5_15_min']} before, "
            f"{results['machine']['load_average_after']} after). Medians resist this, but "
            "quote these figures with care or rerun on an idle machine."
        )
    lines.append(f"\n{results['seconds']:.0f} s in all")
    return "\n".join(lines)


def main(
    *,
    quick: bool = False,
    device: str | None = None,
    json_path: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> int:
    """``python -m convlab bench``: run, print the report, optionally write the JSON.

    Args:
        quick: tiny sizes, for a smoke test.
        device: where to train (default: CUDA, then MPS, then CPU).
        json_path: where to write every measurement with the machine's facts.
        threads: CPU threads for torch.

    Returns:
        The exit status: 0.
    """
    results = run(quick=quick, device=device, threads=threads)
    print(report(results), flush=True)
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"measurements written to {path}")
    return 0
