"""GPU only: ResNet-18 with and without mixed precision and channels-last, and a sync check."""

from __future__ import annotations

import contextlib
import gc
import io
import statistics
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, TextIO

import torch
from torch import Tensor, nn

from convlab import models
from convlab.bench.common import SEED, Sizes, _rebuild, _rotated, _summary
from convlab.data import Loader, synthetic
from convlab.train import fit

__all__ = ["GPU_BATCH_SIZE", "measure_gpu"]

# Images per batch of the GPU measurements (ResNet-18 on 32x32 images).
GPU_BATCH_SIZE = 256


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
