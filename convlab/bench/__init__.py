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

One module per part: :mod:`~convlab.bench.common` (the method, sizes and timing helpers every
comparison shares), :mod:`~convlab.bench.training` (comparisons 1 and 3),
:mod:`~convlab.bench.loaders` (comparison 2), :mod:`~convlab.bench.gpu` (the GPU rows) and
:mod:`~convlab.bench.report` (machine facts, the whole run, the text report, the command).
"""

from convlab.bench.common import BATCH_SIZE, FULL, METHOD, NOISE_LIMIT, QUICK, Sizes
from convlab.bench.gpu import GPU_BATCH_SIZE, measure_gpu
from convlab.bench.loaders import LOADER_TARGET, compare_loaders
from convlab.bench.report import machine_info, main, report, run
from convlab.bench.training import FIT_TARGET, compare_training

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
