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
  random-number generator of every process, history) after each epoch, atomically, keeping the
  previous file as ``run.pt.prev``; calling :func:`fit` again with the same path resumes, and
  refuses settings that would change the run. On the CPU a resumed run ends with exactly the
  weights of an uninterrupted one. Checkpoints carry a format version (:data:`CHECKPOINT_FORMAT`):
  older ones are read, newer ones refused.
* After :func:`only_load_checkpoints`, :func:`fit` does not train: it loads the finished
  checkpoint it is given (the labs switch this on while a notebook is graded).
* Under ``torchrun``, the same call trains with DistributedDataParallel, one device per process,
  with batch norm optionally synchronized across processes (``sync_batchnorm``).
* GoogLeNet's auxiliary classifiers are trained with the paper's loss weight, 0.3.
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
    "only_load_checkpoints",
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
    sync_batchnorm: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
    check_every: int = 25,
    progress: bool = True,
    plot: bool | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` on ``data`` for ``epochs`` epochs and return the history.

    Defaults suit the course's networks on Fashion-MNIST and CIFAR-10: SGD with Nesterov
    momentum 0.9, a one-cycle learning-rate schedule peaking at ``lr``, weight decay 5e-4 on
    weights (not on biases and batch-norm parameters), label smoothing 0.1.

    A model that returns GoogLeNet's auxiliary logits while training
    (:class:`~convlab.models.googlenet.GoogLeNetOutputs`, ours or torchvision's) is trained on
    ``loss(logits) + 0.3 * (loss(aux_logits1) + loss(aux_logits2))``, the paper's weighting
    (Szegedy et al. 2014, Sec. 5); accuracy, training and test, is that of the main logits.

    Under ``torchrun``, every process trains on its own device (``cuda:LOCAL_RANK``, made the
    current CUDA device at the start of the call, else the CPU with the gloo backend) with
    DistributedDataParallel, each on its share of every batch. Data built before the call, on
    the device that was current then (GPU 0, for every rank), are moved to the rank's device in
    place: the loaders of ``data`` then hold the rank's copy, and the memory of the first copy is
    freed. Batch norm normalizes with each process's share of the batch unless
    ``sync_batchnorm``; either way, before every evaluation all ranks take rank 0's running
    statistics (and every other buffer), so the test accuracy and the checkpoint, which rank 0
    writes, describe one network.

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
        device: where to train (default: CUDA, then MPS, then CPU); under ``torchrun``, the
            rank's device.
        sync_batchnorm: under ``torchrun``, batch statistics over the whole batch of all ranks
            (:class:`torch.nn.SyncBatchNorm`, for the call only: the model's own layers are put
            back afterwards). GPUs only: PyTorch's SyncBatchNorm does not run on the CPU. A
            single process sees the whole batch already, and ignores it.
        checkpoint: file to save after every epoch and to resume from. Resuming checks the
            settings that change the run (epochs, lr, batch size, processes, schedule, the
            optimizer's class and hyperparameters, weight decay, label smoothing) and refuses
            other ones.
        check_every: steps between two reads of the non-finite-loss flag.
        progress: show a progress bar.
        plot: redraw a loss and accuracy plot after each epoch (default: in notebooks).

    Returns:
        One dict per epoch: ``epoch``, ``train_loss``, ``train_accuracy``, ``test_accuracy``,
        ``seconds``, ``images_per_second``.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (the message names the step).
        CheckpointError: resuming or grading found no usable checkpoint, or one made with
            other settings or by a newer convlab.
        ValueError: ``sync_batchnorm`` under ``torchrun`` on CPUs.
        torch.cuda.OutOfMemoryError: re-raised with the batch size and what to try.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if _LOAD_ONLY.reason is not None:
        return _load_finished(model, checkpoint, epochs, _LOAD_ONLY.reason)

    world = _Distributed.start()
    if sync_batchnorm and world.active and world.device.type == "cpu":
        raise ValueError(
            "sync_batchnorm=True needs GPUs: PyTorch's SyncBatchNorm does not run on the CPU; "
            "leave it off (every rank then evaluates and saves rank 0's batch-norm statistics)"
        )
    device = world.device if world.active else torch.device(device or default_device())
    cuda = device.type == "cuda"
    amp_dtype = (
        _amp_dtype(device) if (cuda if mixed_precision is None else mixed_precision) else None
    )
    channels_last = cuda if channels_last is None else channels_last
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    data = _move_to_rank(data, device) if world.active else data.to(device)
    train_loader, test_loader = data.train, data.test
    if world.active:
        train_loader = train_loader.shard(world.rank, world.size)
        test_loader = test_loader.shard(world.rank, world.size)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError("the training loader yields no batch: lower the batch size")

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
        "optimizer": type(opt).__name__,
        **_hyperparameters(opt),
        "weight_decay": weight_decay,
        "label_smoothing": label_smoothing,
    }

    history: list[dict[str, float]] = []
    start_epoch = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None:
        state = _read_newest(path, announce=world.main)
        if state is not None:
            _check_config(state, config, path)
            if state.get("format", 1) == 1 and world.main:
                _announce_format_1(path, world)
            _load_weights(model, state["model"], path)
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            _set_rng_states(_own_rng_states(state, world))
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
    replaced = _convert_sync_batchnorm(model) if sync_batchnorm and world.active else []
    try:
        net = DistributedDataParallel(model, device_ids=world.device_ids) if world.active else model
        run = _Training(
            net=net,
            loader=train_loader,
            opt=opt,
            sched=sched,
            scaler=scaler,
            criterion=criterion,
            amp_dtype=amp_dtype,
            channels_last=channels_last,
            world=world,
            check_every=check_every,
            reporter=reporter,
            num_classes=data.num_classes,
        )
        for epoch in range(start_epoch, epochs):
            train_loader.set_epoch(epoch)
            record = _train_epoch(run, epoch)
            world.broadcast_buffers(model)  # rank 0's batch-norm statistics, evaluated and saved
            record["test_accuracy"] = _accuracy(model, test_loader, amp_dtype, channels_last, world)
            history.append(record)
            reporter.epoch_done(record)
            if path is not None:
                rng = world.gather(_rng_states())  # every rank's, in rank order, on rank 0
                if rng is not None:  # rank 0
                    state = {
                        "format": CHECKPOINT_FORMAT,
                        "epoch": epoch + 1,
                        "config": config,
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "scaler": scaler.state_dict(),
                        "rng": rng[0],
                        "history": history,
                    }
                    if world.active:
                        state["rng_ranks"] = rng
                    _write_checkpoint(path, state)
                world.barrier()
    except torch.cuda.OutOfMemoryError as error:
        batch = train_loader.batch_size
        raise torch.cuda.OutOfMemoryError(
            f"the GPU ran out of memory training with batch size {batch}: build the data with "
            f"batch_size={max(1, batch // 2)}, keep mixed_precision on, or use smaller inputs "
            f"(resize); restart the runtime if memory stays full. ({str(error).splitlines()[0]})"
        ) from None
    finally:
        for parent, name, norm in replaced:  # the caller's batch-norm layers, which shared
            setattr(parent, name, norm)  # their parameters and statistics with the synced ones
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
        _load_weights(model, state["model"], Path(path))
    return state


# ----------------------------------------------------------------------------------------------
# One epoch

# Weight of each auxiliary classifier's loss in GoogLeNet's training loss, added to the main
# classifier's while training only (Szegedy et al. 2014, Sec. 5).
AUX_LOSS_WEIGHT = 0.3

# Field names of GoogLeNet's training-mode output, ours and torchvision's alike.
_GOOGLENET_FIELDS = ("logits", "aux_logits2", "aux_logits1")


@dataclass(frozen=True)
class _Training:
    """What every epoch of one :func:`fit` call works with, built once."""

    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    loader: Loader  # this rank's share of the training set
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    amp_dtype: torch.dtype | None
    channels_last: bool
    world: _Distributed
    check_every: int  # steps between two reads of the non-finite-loss flag
    reporter: _Reporter
    num_classes: int


def _split_outputs(out: Tensor | tuple[Tensor | None, ...]) -> tuple[Tensor, list[Tensor]]:
    """A model's main logits and its auxiliary logits (GoogLeNet's, while training; else none)."""
    if isinstance(out, Tensor):
        return out, []
    if isinstance(out, tuple) and getattr(out, "_fields", None) == _GOOGLENET_FIELDS:
        main, aux2, aux1 = out
        return main, [aux for aux in (aux1, aux2) if aux is not None]
    raise TypeError(
        f"the model returned a {type(out).__name__}: fit trains models that return a tensor of "
        "logits (or GoogLeNet's GoogLeNetOutputs while training)"
    )


def _train_epoch(run: _Training, epoch: int) -> dict[str, float]:
    loader, opt, sched, scaler, world = run.loader, run.opt, run.sched, run.scaler, run.world
    net, criterion, amp_dtype = run.net, run.criterion, run.amp_dtype
    steps_per_epoch = len(loader)
    device = loader.device
    net.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    first_bad = torch.full((), -1, device=device, dtype=torch.long)  # first non-finite step
    step_counter = torch.full((), epoch * steps_per_epoch, device=device, dtype=torch.long)
    count = 0
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if run.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp_dtype):
            out, aux = _split_outputs(net(x))
            if i == 0 and out.shape[-1] != run.num_classes:
                raise ValueError(
                    f"the model has {out.shape[-1]} outputs but the data has {run.num_classes} "
                    f"classes: build it with num_classes={run.num_classes}"
                )
            loss = criterion(out, y)
            if aux:  # GoogLeNet while training
                loss = loss + AUX_LOSS_WEIGHT * sum(criterion(logits, y) for logits in aux)
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
        run.reporter.step()
        if (i + 1) % run.check_every == 0 or i + 1 == steps_per_epoch:
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
                out, _ = _split_outputs(net(x))
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


# Optimizer options that choose an implementation, not the run: a checkpoint from a GPU (fused
# SGD) resumes on the CPU.
_IMPLEMENTATION_FLAGS = frozenset({"foreach", "fused", "capturable", "differentiable"})


def _hyperparameters(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's settings that change the run, as plain values (momentum, nesterov, betas...).

    Not ``lr``, which the schedule drives, nor ``weight_decay``, which :func:`_param_groups` sets
    per group: fit records its own of both.
    """
    skip = _IMPLEMENTATION_FLAGS | {"lr", "weight_decay"}
    return {name: _plain(value) for name, value in opt.defaults.items() if name not in skip}


def _plain(value: Any) -> Any:
    """Tensors and sequences as Python numbers and tuples, comparable with ``==``."""
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v) for v in value)
    return value


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


# Version of the checkpoint layout that fit writes. 1: until 2026-12-05. 2: adds the optimizer's
# class and hyperparameters, weight decay and label smoothing to "config", and under torchrun
# "rng_ranks", every rank's random states ("rng" stays rank 0's).
CHECKPOINT_FORMAT = 2


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


def _load_weights(model: nn.Module, weights: dict[str, Any], path: Path) -> None:
    """Load a checkpoint's weights, or say in one line how its network differs from ``model``
    (usually a network changed, or its cell run with other arguments, after training)."""
    own = model.state_dict()
    missing = [key for key in own if key not in weights]
    unexpected = [key for key in weights if key not in own]
    reshaped = [
        f"`{k}` is {tuple(weights[k].shape)} there, {tuple(own[k].shape)} in your model"
        for k in own
        if isinstance(weights.get(k), torch.Tensor) and weights[k].shape != own[k].shape
    ]
    if not (missing or unexpected or reshaped):
        model.load_state_dict(weights)
        return
    differences = [
        f"it lacks {len(missing)} of your model's tensors (`{missing[0]}`...)" if missing else "",
        f"it holds {len(unexpected)} your model lacks (`{unexpected[0]}`...)" if unexpected else "",
        f"{len(reshaped)} differ in shape ({reshaped[0]})" if reshaped else "",
    ]
    raise CheckpointError(
        f"{path.name} was written by a different network than the model given: "
        f"{'; '.join(d for d in differences if d)}. Build the network as it was when trained, or "
        f"delete {path.name} (and {_previous(path).name}) to train this network from the start"
    )


def _read(path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if (
        not isinstance(state, dict)
        or "model" not in state
        or "epoch" not in state
        or not isinstance(state.get("format", 1), int)
    ):
        raise CheckpointError(f"{path} is not a convlab training checkpoint")
    return state


def _check_format(state: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint written by a newer convlab (an older format is read as it is)."""
    version = state.get("format", 1)
    if version > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {version}, newer than this convlab reads (up to "
            f"{CHECKPOINT_FORMAT}): upgrade convlab to use it"
        )


def _announce_format_1(path: Path, world: _Distributed) -> None:
    ranks = ", and every rank resumes with rank 0's random state" if world.active else ""
    print(
        f"resuming from {path}, checkpoint format 1 (an older convlab): the optimizer, momentum, "
        f"nesterov, weight_decay and label_smoothing it was made with are not recorded, so they "
        f"are not checked{ranks}"
    )


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
        _check_format(state, candidate)  # readable, and too new: no falling back to .prev
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


@dataclass
class _LoadOnly:
    reason: str | None = None


_LOAD_ONLY = _LoadOnly()


def only_load_checkpoints(
    enabled: bool = True, reason: str = "fit() only loads checkpoints here"
) -> None:
    """Make every later :func:`fit` load its finished checkpoint instead of training.

    For a context where training must not happen and a finished run is handed in with the code,
    as when a lab notebook is graded (:func:`convlab.labs.start` switches it on then). ``fit``
    then needs ``checkpoint=`` naming a file that holds all the epochs it is asked for, and
    returns that run's history; it raises :class:`CheckpointError`, starting with ``reason``,
    otherwise.

    Args:
        enabled: switch loading-only on (``False``: train again).
        reason: why nothing trains, the start of every error message while it is on.
    """
    _LOAD_ONLY.reason = reason if enabled else None


def _load_finished(
    model: nn.Module, checkpoint: str | os.PathLike[str] | None, epochs: int, reason: str
) -> list[dict[str, float]]:
    """Load the finished checkpoint instead of training (:func:`only_load_checkpoints`)."""
    if checkpoint is None:
        raise CheckpointError(
            f"{reason}, so fit() does not train: it needs the checkpoint of your finished run, "
            "but fit() was called without checkpoint=..."
        )
    path = Path(checkpoint)
    try:
        state = _read_newest(path, announce=True)
    except CheckpointError as error:
        raise CheckpointError(f"{reason}, so fit() does not train, and {error}") from None
    if state is None:
        raise CheckpointError(
            f"{reason}, so fit() does not train: hand in {path.name} from your finished "
            "training run next to the notebook"
        )
    if int(state["epoch"]) < epochs:
        raise CheckpointError(
            f"{path.name} holds {state['epoch']} of {epochs} epochs: finish training "
            "(run the cell again to resume) and hand in the finished checkpoint"
        )
    _load_weights(model, state["model"], path)
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


def _own_rng_states(state: dict[str, Any], world: _Distributed) -> dict[str, Any]:
    """This rank's random states in a checkpoint (format 1 and single processes: ``rng``)."""
    ranks = state.get("rng_ranks")
    if world.active and isinstance(ranks, list) and len(ranks) == world.size:
        return ranks[world.rank]
    return state["rng"]


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
        """Join the torchrun launch: ``cuda:LOCAL_RANK`` (made the current CUDA device before
        anything is put on it) with NCCL, else the CPU with gloo."""
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

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order on rank 0, None on the others (pickled)."""
        if not self.active:
            return [obj]
        gathered: list[Any] | None = [None] * self.size if self.main else None
        dist.gather_object(obj, gathered, dst=0)
        return gathered

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Give every rank rank 0's buffers (batch-norm running statistics), in place."""
        if self.active:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)


def _move_to_rank(data: ImageData, device: torch.device) -> ImageData:
    """Move the caller's loaders to this rank's device in place (torchrun).

    Data built before :func:`fit` lie where the current device pointed then: GPU 0 on every rank.
    A moved copy alone would leave the caller's copy there, on every rank; instead each loader
    takes the moved tensors over, and CUDA's allocator hands the memory back.
    """
    left_cuda = False
    for loader in (data.train, data.test):
        moved = loader.to(device)
        if moved is not loader:
            left_cuda |= loader.device.type == "cuda"
            vars(loader).update(vars(moved))  # the same settings and epoch, the moved tensors
    if left_cuda:
        torch.cuda.empty_cache()
    return data


def _convert_sync_batchnorm(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """Swap every batch-norm layer of ``model`` for a SyncBatchNorm sharing its parameters and
    running statistics; returns ``(parent, name, layer)`` for putting the layers back."""
    replaced = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
                child, nn.SyncBatchNorm
            ):
                setattr(parent, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
                replaced.append((parent, name, child))
    return replaced


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
