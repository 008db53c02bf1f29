"""What every comparison of the benchmark shares: the method, the sizes, the timing helpers."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from convlab.data import Loader

__all__ = ["BATCH_SIZE", "FULL", "METHOD", "NOISE_LIMIT", "QUICK", "SEED", "Sizes"]

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
SEED = 0
# Runs of one contender further apart than this (fastest / slowest) mean the machine was busy
# with something else: the report says so and the figures should not be quoted.
NOISE_LIMIT = 1.25


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
