"""Comparison 2: the device-resident loader against torchvision's DataLoader.

torchvision's transforms are the baseline here, imported only when the comparison runs.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from convlab.bench.common import BATCH_SIZE, SEED, Sizes, _rotated, _summary
from convlab.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, Loader

__all__ = ["DATALOADER_WORKERS", "LOADER_TARGET", "compare_loaders"]

# Target of comparison 2: the loader at least 3x torchvision's.
LOADER_TARGET = 3.0
# The worker counts compared: none, and the 2 CPUs of a Colab runtime.
DATALOADER_WORKERS = (0, 2)


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
