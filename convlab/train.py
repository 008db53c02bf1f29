"""Training and evaluation: :func:`fit` and :func:`evaluate`.

One loop for every network of the course, fast where it matters and safe where students lose
work:

* The device is chosen for you (CUDA, then Apple MPS, then the CPU). On CUDA, mixed precision
  (bf16 where the GPU has it, else fp16 with a gradient scaler) and channels-last memory layout
  are on by default.
* Nothing waits for the GPU inside an epoch: loss and accuracy accumulate in device tensors and
  are read once per epoch; a non-finite loss is caught by a flag on the device, read every
  ``check_every`` steps.
* ``checkpoint="run.pt"`` saves everything (weights, optimizer, schedule, gradient scaler, every
  random-number generator, history) after each epoch, atomically, keeping the previous file as
  ``run.pt.prev``; calling :func:`fit` again with the same path resumes. On the CPU a resumed run
  ends with exactly the weights of an uninterrupted one.
* While nbgrader validates or grades a notebook (``NBGRADER_EXECUTION`` is set), :func:`fit`
  does not train: it loads the finished checkpoint the student handed in.
* Under ``torchrun``, the same call trains with DistributedDataParallel.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from convlab.data import ImageData, Loader
from convlab.device import default_device

__all__ = [
    "CheckpointError",
    "NonFiniteLossError",
    "evaluate",
    "fit",
    "load_checkpoint",
]

Schedule = str | Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]
OptimizerFactory = Callable[[Iterable[dict[str, Any]]], torch.optim.Optimizer]


# Peak learning rate of SGD under one-cycle for the course's batch-normalized networks at batch
# sizes 128-512 (the recipes in convlab.recipes use 0.1-0.2).
DEFAULT_LR = 0.1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, unfinished or from different settings."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


# ----------------------------------------------------------------------------------------------
# Public API


def fit(
    model: nn.Module,
    data: ImageData,
    epochs: int,
    *,
    lr: float | None = None,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 5e-4,
    label_smoothing: float = 0.1,
    schedule: Schedule = "onecycle",
    optimizer: OptimizerFactory | None = None,
    mixed_precision: bool | None = None,
    channels_last: bool | None = None,
    device: torch.device | str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    check_every: int = 25,
    progress: bool = True,
    plot: bool | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` on ``data`` for ``epochs`` epochs and return the history.

    Defaults suit the course's networks on Fashion-MNIST and CIFAR-10: SGD with Nesterov
    momentum 0.9, a one-cycle learning-rate schedule peaking at ``lr``, weight decay 5e-4 on
    weights (not on biases and batch-norm parameters), label smoothing 0.1.

    Args:
        model: the network; its output must have ``data.num_classes`` logits.
        data: an :class:`~convlab.data.ImageData` (``convlab.data.cifar10()``, ...).
        epochs: passes over the training set.
        lr: peak learning rate (one-cycle), or the starting one (cosine, constant); by default
            0.1 for SGD, or the learning rate the ``optimizer`` function set. When given, it
            replaces the optimizer's own.
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 penalty on weights (parameters with more than one dimension).
        label_smoothing: cross-entropy label smoothing.
        schedule: ``"onecycle"``, ``"cosine"``, ``"constant"``, or a function
            ``(optimizer, total_steps) -> scheduler`` stepped after every batch.
        optimizer: a function ``(param_groups) -> optimizer`` replacing SGD; the groups carry
            their ``weight_decay``, and ``lr`` is the schedule's starting point.
        mixed_precision: autocast to bf16/fp16; default on for CUDA only.
        channels_last: NHWC memory layout for model and batches; default on for CUDA only.
        device: where to train (default: CUDA, then MPS, then CPU).
        checkpoint: file to save after every epoch and to resume from.
        check_every: steps between two reads of the non-finite-loss flag.
        progress: show a progress bar.
        plot: redraw a loss and accuracy plot after each epoch (default: in notebooks).

    Returns:
        One dict per epoch: ``epoch``, ``train_loss``, ``train_accuracy``, ``test_accuracy``,
        ``seconds``, ``images_per_second``.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (the message names the step).
        CheckpointError: resuming or grading found no usable checkpoint.
        torch.cuda.OutOfMemoryError: re-raised with the batch size and what to try.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if os.environ.get("NBGRADER_EXECUTION"):
        return _load_for_grading(model, checkpoint, epochs)

    world = _Distributed.start()
    device = world.device if world.active else torch.device(device or default_device())
    cuda = device.type == "cuda"
    amp_dtype = (
        _amp_dtype(device) if (cuda if mixed_precision is None else mixed_precision) else None
    )
    channels_last = cuda if channels_last is None else channels_last
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    data = data.to(device)
    train_loader, test_loader = data.train, data.test
    if world.active:
        train_loader = train_loader.shard(world.rank, world.size)
        test_loader = test_loader.shard(world.rank, world.size)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError("the training loader yields no batch: lower the batch size")

    net: nn.Module = (
        DistributedDataParallel(model, device_ids=world.device_ids) if world.active else model
    )
    groups = _param_groups(model, weight_decay)
    if optimizer is None:
        lr = DEFAULT_LR if lr is None else lr
        opt: torch.optim.Optimizer = _sgd(groups, lr, momentum, nesterov, fused=cuda)
    else:
        opt = optimizer(groups)
        if lr is None:  # the optimizer's own, which the schedule then starts from or peaks at
            lr = float(opt.param_groups[0]["lr"])
        for group in opt.param_groups:
            group["lr"] = lr
    sched = _scheduler(schedule, opt, lr, epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    config = {
        "epochs": epochs,
        "lr": lr,
        "batch_size": data.train.batch_size,
        "world_size": world.size,
        "schedule": schedule if isinstance(schedule, str) else "custom",
    }

    history: list[dict[str, float]] = []
    start_epoch = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None:
        state = _read_newest(path, announce=world.main)
        if state is not None:
            _check_config(state, config, path)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            _set_rng_states(state["rng"])
            history = list(state["history"])
            start_epoch = int(state["epoch"])

    if world.main:
        _announce(device, amp_dtype, channels_last, world, start_epoch, epochs)
    if start_epoch >= epochs:
        return history

    reporter = _Reporter(
        total=(epochs - start_epoch) * steps_per_epoch,
        progress=progress and world.main,
        plot=_in_notebook() if plot is None else plot,
        history=history,
    )
    try:
        for epoch in range(start_epoch, epochs):
            train_loader.set_epoch(epoch)
            record = _train_epoch(
                net, train_loader, opt, sched, scaler, criterion, amp_dtype, channels_last,
                world, epoch, steps_per_epoch, check_every, reporter, data.num_classes,
            )  # fmt: skip
            record["test_accuracy"] = _accuracy(model, test_loader, amp_dtype, channels_last, world)
            history.append(record)
            reporter.epoch_done(record)
            if path is not None:
                if world.main:
                    _write_checkpoint(
                        path,
                        {
                            "format": 1,
                            "epoch": epoch + 1,
                            "config": config,
                            "model": model.state_dict(),
                            "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict(),
                            "scaler": scaler.state_dict(),
                            "rng": _rng_states(),
                            "history": history,
                        },
                    )
                world.barrier()
    except torch.cuda.OutOfMemoryError as error:
        batch = train_loader.batch_size
        raise torch.cuda.OutOfMemoryError(
            f"the GPU ran out of memory training with batch size {batch}: build the data with "
            f"batch_size={max(1, batch // 2)}, keep mixed_precision on, or use smaller inputs "
            f"(resize); restart the runtime if memory stays full. ({str(error).splitlines()[0]})"
        ) from None
    finally:
        reporter.close()
    return history


def evaluate(
    model: nn.Module,
    data: ImageData | Loader,
    *,
    device: torch.device | str | None = None,
    mixed_precision: bool | None = None,
) -> float:
    """Accuracy of ``model`` on a test set, in [0, 1].

    Args:
        model: the network (put in evaluation mode for the call, then restored).
        data: an :class:`~convlab.data.ImageData` (its test split is used) or a loader.
        device: where to run (default: where the model's parameters are).
        mixed_precision: autocast on CUDA (default on for CUDA).

    Returns:
        The fraction of correctly classified images.
    """
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else default_device()
    device = torch.device(device)
    loader = (data.test if isinstance(data, ImageData) else data).to(device)
    model.to(device)
    amp = (
        _amp_dtype(device)
        if (device.type == "cuda" if mixed_precision is None else mixed_precision)
        else None
    )
    return _accuracy(model, loader, amp, False, _Distributed.start())


def load_checkpoint(path: str | os.PathLike[str], model: nn.Module | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`fit` (newest readable of the file and its ``.prev``).

    Only tensors and plain values are accepted (``torch.load(weights_only=True)``): a file that
    would run code when unpickled is refused.

    Args:
        path: the ``checkpoint`` path given to :func:`fit`.
        model: if given, its weights are loaded from the checkpoint.

    Returns:
        The checkpoint's contents (``epoch``, ``history``, ``model``, ...).

    Raises:
        CheckpointError: neither file exists or can be read.
    """
    state = _read_newest(Path(path), announce=True)
    if state is None:
        raise CheckpointError(f"no checkpoint at {os.fspath(path)}")
    if model is not None:
        model.load_state_dict(state["model"])
    return state


# ----------------------------------------------------------------------------------------------
# One epoch


def _train_epoch(
    net: nn.Module,
    loader: Loader,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    criterion: nn.Module,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    world: _Distributed,
    epoch: int,
    steps_per_epoch: int,
    check_every: int,
    reporter: _Reporter,
    num_classes: int,
) -> dict[str, float]:
    device = loader.device
    net.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    first_bad = torch.full((), -1, device=device, dtype=torch.long)  # first non-finite step
    step_counter = torch.full((), epoch * steps_per_epoch, device=device, dtype=torch.long)
    count = 0
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp_dtype):
            out = net(x)
            if i == 0 and out.shape[-1] != num_classes:
                raise ValueError(
                    f"the model has {out.shape[-1]} outputs but the data has {num_classes} "
                    f"classes: build it with num_classes={num_classes}"
                )
            loss = criterion(out, y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        with torch.no_grad():
            loss = loss.detach().float()
            step_counter += 1
            first_bad = torch.where(
                ~torch.isfinite(loss) & (first_bad < 0), step_counter, first_bad
            )
            loss_sum += loss * y.shape[0]
            correct += (out.argmax(dim=-1) == y).sum()
        count += y.shape[0]
        reporter.step()
        if (i + 1) % check_every == 0 or i + 1 == steps_per_epoch:
            _raise_if_nonfinite(first_bad, opt, world)
    totals = world.all_reduce(torch.stack([loss_sum, correct.to(loss_sum.dtype)]))
    count = world.all_reduce_int(count)
    seconds = time.perf_counter() - start
    train_loss, train_correct = totals.tolist()  # the one read of this epoch's metrics
    return {
        "epoch": epoch + 1,
        "train_loss": train_loss / count,
        "train_accuracy": train_correct / count,
        "seconds": seconds,
        "images_per_second": count / seconds,
    }


def _raise_if_nonfinite(first_bad: Tensor, opt: torch.optim.Optimizer, world: _Distributed) -> None:
    step = int(world.all_reduce(first_bad.float(), op="max").item())
    if step < 0:
        return
    lr = opt.param_groups[0]["lr"]
    raise NonFiniteLossError(
        f"the training loss became NaN or infinite at step {step} (learning rate then {lr:.3g}): "
        "try a lower lr, check the data's normalization and the model's initialization, "
        "or add batch normalization"
    )


def _accuracy(
    net: nn.Module,
    loader: Loader,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    world: _Distributed,
) -> float:
    device = loader.device
    was_training = net.training
    net.eval()
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    with torch.no_grad():
        for x, y in loader:
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, amp_dtype):
                out = net(x)
            correct += (out.argmax(dim=-1) == y).sum()
            count += y.shape[0]
    net.train(was_training)
    total = world.all_reduce(correct.float()).item()
    count = world.all_reduce_int(count)
    return total / count if count else math.nan


# ----------------------------------------------------------------------------------------------
# Optimizer and schedule


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weights only: biases and batch-norm scales stay undecayed."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]


def _sgd(
    groups: list[dict[str, Any]], lr: float, momentum: float, nesterov: bool, fused: bool
) -> torch.optim.SGD:
    # fused (CUDA): one kernel for all parameters, and the fp16 gradient scaler hands it its
    # inf check on the device instead of reading it back after every step
    return torch.optim.SGD(
        groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0, fused=fused or None
    )


def _scheduler(
    schedule: Schedule, opt: torch.optim.Optimizer, lr: float, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if callable(schedule):
        return schedule(opt, total_steps)
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=lr,
            total_steps=total_steps,
            pct_start=0.25,
            anneal_strategy="linear",
            cycle_momentum=False,  # keep the momentum asked for
        )
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    if schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    raise ValueError(
        f"unknown schedule {schedule!r}: use 'onecycle', 'cosine', 'constant' or a function"
    )


def _autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    if device.type == "cuda":
        # bf16 needs Ampere or newer; older GPUs (Colab's T4) emulate it slowly: fp16 + scaler
        return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16
    if device.type == "cpu":
        return torch.bfloat16
    return torch.float16


# ----------------------------------------------------------------------------------------------
# Checkpoints


def _previous(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


def _write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a temporary file, flushed to disk, then renamed over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        os.replace(path, _previous(path))
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise CheckpointError(f"{path} is not a convlab training checkpoint")
    return state


_UNREADABLE = (
    CheckpointError,
    EOFError,
    OSError,
    RuntimeError,
    ValueError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)


def _read_newest(path: Path, announce: bool) -> dict[str, Any] | None:
    """The newest readable checkpoint of ``path`` and ``path.prev``; None when neither exists."""
    candidates = [p for p in (path, _previous(path)) if p.exists()]
    problems = []
    for candidate in candidates:
        try:
            state = _read(candidate)
        except _UNREADABLE as error:
            problems.append(f"{candidate} is unreadable ({str(error).splitlines()[0][:160]})")
            continue
        if problems and announce:
            print(f"{problems[0]}; resuming from {candidate} (epoch {state['epoch']}) instead")
        return state
    if problems:
        raise CheckpointError(
            "; ".join(problems) + ": delete them to start over, or restore a good copy"
        )
    return None


def _check_config(state: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    saved = state.get("config", {})
    differ = [
        f"{k}={saved[k]!r} (now {v!r})" for k, v in config.items() if k in saved and saved[k] != v
    ]
    if differ:
        raise CheckpointError(
            f"{path} was made with other settings: {', '.join(differ)}. Call fit with the same "
            "settings to resume, or give a new checkpoint path to start over"
        )


def _load_for_grading(
    model: nn.Module, checkpoint: str | os.PathLike[str] | None, epochs: int
) -> list[dict[str, float]]:
    """nbgrader is running the notebook: load the submitted, finished checkpoint instead of training."""
    if checkpoint is None:
        raise CheckpointError(
            "this notebook is being graded, so fit() does not train: it needs the checkpoint of "
            "your finished run, but fit() was called without checkpoint=..."
        )
    path = Path(checkpoint)
    try:
        state = _read_newest(path, announce=True)
    except CheckpointError as error:
        raise CheckpointError(f"graded without training, and {error}") from None
    if state is None:
        raise CheckpointError(
            f"this notebook is being graded, so fit() does not train: hand in {path.name} "
            "from your finished training run next to the notebook"
        )
    if int(state["epoch"]) < epochs:
        raise CheckpointError(
            f"{path.name} holds {state['epoch']} of {epochs} epochs: finish training "
            "(run the cell again to resume) and hand in the finished checkpoint"
        )
    model.load_state_dict(state["model"])
    return list(state["history"])


# ----------------------------------------------------------------------------------------------
# Random-number generators, stored as tensors and plain values (weights_only loading)


def _rng_states() -> dict[str, Any]:
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)  # noqa: NPY002 (the global RNG student code uses)
    py_version, py_state, py_gauss = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np_state = states["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py = states["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# ----------------------------------------------------------------------------------------------
# Several processes (torchrun)


@dataclass(frozen=True)
class _Distributed:
    """This process's place in a torchrun launch (``size`` 1 when there is none)."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")  # noqa: RUF009 (immutable)

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def device_ids(self) -> list[int] | None:
        return [self.device.index] if self.device.type == "cuda" else None

    @classmethod
    def start(cls) -> _Distributed:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
            return cls()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(rank=dist.get_rank(), size=dist.get_world_size(), device=device)

    def all_reduce(self, tensor: Tensor, op: str = "sum") -> Tensor:
        if self.active:
            tensor = tensor.clone()
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return tensor

    def all_reduce_int(self, value: int) -> int:
        if not self.active:
            return value
        return int(self.all_reduce(torch.tensor(float(value), device=self.device)).item())

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


# ----------------------------------------------------------------------------------------------
# Reporting: one line at the start, a progress bar, a plot per epoch


def _announce(
    device: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    world: _Distributed,
    start_epoch: int,
    epochs: int,
) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    parts = [f"training on {name}"]
    if world.active:
        parts.append(f"{world.size} processes")
    if amp_dtype is not None:
        parts.append(f"{str(amp_dtype).removeprefix('torch.')} mixed precision")
    if channels_last:
        parts.append("channels_last")
    if start_epoch >= epochs:
        parts.append(f"already finished ({epochs} epochs)")
    elif start_epoch:
        parts.append(f"resuming after epoch {start_epoch} of {epochs}")
    print(", ".join(parts))


def _in_notebook() -> bool:
    """True inside a Jupyter or Colab kernel (whose shells have a kernel), not a terminal IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


class _Reporter:
    def __init__(self, total: int, progress: bool, plot: bool, history: Sequence[dict[str, float]]):
        self.history = history
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="step", mininterval=0.5, leave=True)
        self.plot = _LivePlot() if plot else None

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update()

    def epoch_done(self, record: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(
                epoch=int(record["epoch"]),
                loss=f"{record['train_loss']:.3f}",
                train=f"{record['train_accuracy']:.3f}",
                test=f"{record['test_accuracy']:.3f}",
            )
        if self.plot is not None:
            self.plot.update(self.history)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _LivePlot:
    """Loss and accuracy per epoch, redrawn in place in a notebook output."""

    def __init__(self) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.figure, (self.loss_ax, self.acc_ax) = plt.subplots(1, 2, figsize=(9, 3))
        plt.close(self.figure)  # shown through the display handle only
        self.handle = display(self.figure, display_id=True)

    def update(self, history: Sequence[dict[str, float]]) -> None:
        epochs = [h["epoch"] for h in history]
        self.loss_ax.clear()
        self.loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
        self.loss_ax.set_xlabel("epoch")
        self.loss_ax.legend()
        self.acc_ax.clear()
        self.acc_ax.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train")
        self.acc_ax.plot(epochs, [h["test_accuracy"] for h in history], "s-", label="test")
        self.acc_ax.set_xlabel("epoch")
        self.acc_ax.set_ylabel("accuracy")
        self.acc_ax.legend()
        self.figure.tight_layout()
        if self.handle is not None:
            self.handle.update(self.figure)
