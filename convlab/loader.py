"""The batch pipeline: images held on the training device, batches by index, augmented there.

A :class:`Loader` keeps a whole data set as one ``uint8`` tensor ``(N, C, H, W)`` on the device
that trains on it (Fashion-MNIST is 47 MB, CIFAR-10 150 MB). Each batch is gathered by index,
augmented (:class:`Augment`), converted to ``float32`` and normalized there, in a handful of
vectorized tensor operations: no worker processes, no per-sample Python, no copy from the host
per batch.

Randomness is a pure function of ``(seed, epoch)``. At the start of an epoch the loader seeds two
CPU generators from a hash of ``(seed, epoch)`` (one for the order, one for the augmentation),
draws the epoch's permutation and every sample's crop offsets and flip, and moves both to the
device once. Resuming at epoch ``e`` therefore gives the very batches an uninterrupted run saw,
whatever the global random state and however many epochs ran before in the process; and because
the draws are made on the CPU, the batches are the same on every device.

The data sets that fill loaders are in :mod:`convlab.data`, which re-exports this module's names.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Augment", "Loader", "random_crop_flip"]


# ---------------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augment:
    """Random crop of a padded image and random horizontal flip, vectorized over the batch.

    Each image is padded by ``pad`` pixels on every side, an ``H x W`` window is cut at a random
    offset (``(2 * pad + 1) ** 2`` equally likely positions) and, with probability 1/2 when
    ``flip`` is on, mirrored left to right. This is the augmentation of He et al. (2016, Sec. 4.2)
    for CIFAR-10 with ``pad=4``.

    Padding is with zeros by default: raw pixel value 0 (black) in the ``uint8`` image, before
    normalization, which is what torchvision's ``RandomCrop(32, padding=4)`` does ahead of
    ``Normalize``; after normalization those pixels are ``-mean / std``, not 0. ``"reflect"``
    mirrors the border instead (it needs ``pad < H`` and ``pad < W``).

    Randomness is split from its use so that a loader can draw an epoch's parameters at once:
    :meth:`sample` draws them, :meth:`apply` applies them; calling the object does both.

    Attributes:
        pad: pixels added on each side before cropping; 0 disables the crop.
        flip: whether to mirror half of the images left to right.
        padding_mode: ``"zeros"`` or ``"reflect"``.
    """

    pad: int = 4
    flip: bool = True
    padding_mode: Literal["zeros", "reflect"] = "zeros"

    def __post_init__(self) -> None:
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {self.pad}")
        if self.padding_mode not in ("zeros", "reflect"):
            raise ValueError(
                f"padding_mode must be 'zeros' or 'reflect', got {self.padding_mode!r}"
            )

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Draw the crop offsets and flips of ``n`` images.

        Args:
            n: number of images.
            generator: the source of randomness; the result lives on its device.

        Returns:
            ``int64`` tensor whose columns are the row offset, the column offset (both in
            ``[0, 2 * pad]``, the window's corner in the padded image) and the flip (0 or 1).

        Shape:
            Output: ``(n, 3)``.
        """
        device = generator.device
        offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=generator, device=device)
        if self.flip:
            flips = torch.randint(0, 2, (n, 1), generator=generator, device=device)
        else:
            flips = torch.zeros(n, 1, dtype=torch.int64, device=device)
        return torch.cat([offsets, flips], dim=1)

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        """Crop and flip each image as ``params`` say, in one gather.

        Args:
            x: images of any dtype (the loaders pass ``uint8``).
            params: the output of :meth:`sample` for these images (moved to ``x``'s device).

        Returns:
            The augmented images, same shape and dtype as ``x``.

        Shape:
            x: ``(N, C, H, W)``; params: ``(N, 3)``; output: ``(N, C, H, W)``.
        """
        n, c, h, w = x.shape
        device = x.device
        row0, col0, flip = params.to(device).unbind(1)
        p = self.pad
        mode = "constant" if self.padding_mode == "zeros" else "reflect"
        padded = F.pad(x, (p, p, p, p), mode=mode) if p else x  # (N, C, H + 2p, W + 2p)
        rows = row0[:, None] + torch.arange(h, device=device)  # (N, H)
        cols = torch.arange(w, device=device)
        cols = torch.where(flip[:, None].bool(), w - 1 - cols, cols) + col0[:, None]  # (N, W)
        batch = torch.arange(n, device=device)[:, None, None, None]
        channels = torch.arange(c, device=device)[None, :, None, None]
        return padded[batch, channels, rows[:, None, :, None], cols[:, None, None, :]]

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Augment a batch with fresh randomness from ``generator``.

        Args:
            x: images.
            generator: the source of randomness (any device; the draws move to ``x``'s).

        Returns:
            The augmented images.

        Shape:
            x: ``(N, C, H, W)``; output: ``(N, C, H, W)``.
        """
        return self.apply(x, self.sample(x.shape[0], generator))


def random_crop_flip(x: Tensor, pad: int, generator: torch.Generator) -> Tensor:
    """Zero-pad by ``pad``, crop back to ``H x W`` at a random offset, flip half the images.

    Args:
        x: a batch of images of any dtype.
        pad: pixels of zero padding on each side (4 for 32x32 CIFAR-10).
        generator: the source of randomness (any device).

    Returns:
        The augmented batch, same shape and dtype.

    Shape:
        x: ``(N, C, H, W)``; output: ``(N, C, H, W)``.
    """
    return Augment(pad=pad, flip=True)(x, generator)


# ---------------------------------------------------------------------------------------------
# Loader
# ---------------------------------------------------------------------------------------------


def _seed(seed: int, epoch: int, stream: str) -> int:
    """A 63-bit generator seed from ``(seed, epoch, stream)``.

    Hashing, rather than ``seed + epoch``, keeps nearby pairs such as (0, 1) and (1, 0) apart and
    gives the order and the augmentation unrelated streams.
    """
    # "convlab.data", where this code was first, is part of every seed: keep it, or the
    # batches of every recorded run change
    digest = hashlib.blake2b(f"convlab.data:{stream}:{seed}:{epoch}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") & (2**63 - 1)


def _generator(seed: int, epoch: int, stream: str) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(_seed(seed, epoch, stream))


class Loader:
    """Batches drawn by index from ``uint8`` images held on one device; per-batch augmentation there.

    One epoch: a permutation of the ``N`` samples (the identity when ``shuffle`` is off), cut into
    batches; each batch is gathered, augmented, normalized as ``(x / 255 - mean) / std`` in
    ``float32`` and optionally resized, all on the images' device.

    Determinism: every ``iter(loader)`` runs epoch :attr:`epoch`, which only :meth:`set_epoch`
    changes. Call it at the start of every epoch: otherwise each pass repeats the same order and
    the same crops. A pass depends on ``(seed, epoch)`` (and the shard) only, so iterating twice
    gives the same batches, and global random number generators are neither read nor advanced.

    Sharding (``rank``, ``world_size``, or :meth:`shard`): every rank draws the same epoch
    permutation and keeps every ``world_size``-th position of it, starting at ``rank``, in batches
    of ``batch_size // world_size``. Batch ``b`` of all ranks together is then exactly batch ``b``
    of the unsharded loader, augmentation included (parameters are drawn per position of the
    permutation, for all positions, on every rank). Training loaders (``shuffle=True``) keep the
    first ``N - N % world_size`` positions, so every rank sees as many samples and batches;
    evaluation loaders (``shuffle=False``) keep all ``N``: sample counts differ by at most one and
    batch counts by at most one, with no padding or repeats. ``drop_last`` keeps only whole
    batches of ``batch_size`` (then all ranks see the same counts in both kinds).

    No batch of one in training: batch norm in training mode cannot normalize a single value per
    channel (``BatchNorm1d``, or ``BatchNorm2d`` on 1x1 maps, raises), and one sample's statistics
    are noise anyway. So when a training loader's (``shuffle=True``) last batch on this rank
    would hold one sample, that sample is folded into the batch before it, which then holds
    ``batch_size // world_size + 1``: every sample is still seen every epoch, where dropping it
    would leave out another random sample each epoch. Under sharding this happens when the
    unsharded last batch holds ``world_size`` samples; the ranks then take one batch fewer than
    the unsharded loader, and their last batch together is its last two. Evaluation loaders
    (``shuffle=False``) keep a last batch of one: batch norm then uses its running statistics,
    and every test image counts.

    Args:
        images: the data set, ``uint8``; the loader works on the device these live on.
        labels: class indices (moved to the images' device if elsewhere).
        batch_size: samples per batch over all ranks; each rank yields ``batch_size // world_size``.
        mean: per-channel mean, in units of the [0, 1] pixel scale.
        std: per-channel standard deviation, same units.
        shuffle: draw a new permutation each epoch (training); otherwise the stored order.
        drop_last: drop the last, incomplete batch.
        augment: per-batch augmentation, applied to the ``uint8`` images before normalization.
        resize: side of the square output (bilinear, no antialiasing), after augmentation;
            ``None`` keeps ``H x W``.
        seed: seed of the order and augmentation streams.
        rank: this process's index among ``world_size`` shards.
        world_size: number of shards.

    Shape:
        images: ``(N, C, H, W)``; labels: ``(N,)``.
        Each batch: x ``(B, C, H', W')`` ``float32`` and y ``(B,)`` ``int64``, with
        ``B <= batch_size // world_size`` (``+ 1`` for a training loader's last batch, see
        above) and ``H' = W' = resize`` if given.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        shuffle: bool = False,
        drop_last: bool = False,
        augment: Augment | None = None,
        resize: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise TypeError(
                f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        if labels.dim() != 1 or len(labels) != len(images):
            raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"labels must be integer class indices, got {labels.dtype}")
        channels = images.shape[1]
        if len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"mean and std need one value per channel ({channels}), got {len(mean)} and {len(std)}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}"
            )
        if batch_size % world_size:
            raise ValueError(
                f"batch_size {batch_size} is not divisible by world_size {world_size}: "
                "every rank must take an equal part of each batch"
            )
        if resize is not None and resize < 1:
            raise ValueError(f"resize must be a positive side in pixels, got {resize}")

        self.images = images
        self.labels = labels.to(device=images.device, dtype=torch.int64)
        self.batch_size = batch_size
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.resize = resize
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        # (x - 255 mean) / (255 std) = (x / 255 - mean) / std, on the 0..255 scale of the uint8 input
        self._mean255 = self._per_channel(self.mean)
        self._std255 = self._per_channel(self.std)

    def _per_channel(self, values: tuple[float, ...]) -> Tensor:
        return torch.tensor(values, dtype=torch.float32).mul(255).view(1, -1, 1, 1).to(self.device)

    @property
    def device(self) -> torch.device:
        """The device the images live on and the batches come out on."""
        return self.images.device

    @property
    def local_batch_size(self) -> int:
        """Samples per batch on this rank: ``batch_size // world_size``."""
        return self.batch_size // self.world_size

    @property
    def _kept(self) -> int:
        """Positions of each epoch's permutation shared out among the ranks."""
        n = len(self.labels)
        if self.drop_last:
            return n - n % self.batch_size
        if self.shuffle:
            return n - n % self.world_size
        return n

    @property
    def num_samples(self) -> int:
        """Samples this shard sees per epoch."""
        return len(range(self.rank, self._kept, self.world_size))

    @property
    def _folds_last(self) -> bool:
        """Whether a last batch of one sample joins the batch before it (training loaders)."""
        n, size = self.num_samples, self.local_batch_size
        return self.shuffle and n > size and n % size == 1

    def __len__(self) -> int:
        """Batches per epoch for this shard."""
        return math.ceil(self.num_samples / self.local_batch_size) - int(self._folds_last)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch that ``iter(loader)`` runs; its order and augmentation follow from it.

        Args:
            epoch: the epoch number (0, 1, ...); the same number gives the same batches.
        """
        self.epoch = epoch

    def indices(self, epoch: int) -> Tensor:
        """The sample indices this shard visits in ``epoch``, in order (batch ``b`` is the
        ``b``-th slice of ``local_batch_size`` of them, but for a training loader's last batch,
        which takes a single sample left after it).

        Args:
            epoch: the epoch number; the result depends on it and on ``seed`` only.

        Returns:
            ``int64`` indices into the data set, on the loader's device.
        """
        return self._plan(epoch)[0]

    def _plan(self, epoch: int) -> tuple[Tensor, Tensor | None]:
        """This shard's sample indices and augmentation parameters for ``epoch``, on the device."""
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=_generator(self.seed, epoch, "order"))
        else:
            order = torch.arange(n)
        params = None
        if self.augment is not None:  # drawn for every position, so shards agree with no shard
            params = self.augment.sample(n, _generator(self.seed, epoch, "augment"))
        mine = slice(self.rank, self._kept, self.world_size)
        order = order[mine].to(self.device)
        if params is not None:
            params = params[mine].to(self.device)
        return order, params

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Run epoch :attr:`epoch` (see :meth:`set_epoch`).

        Returns:
            An iterator of ``(x, y)``: ``float32`` normalized images and ``int64`` labels, both
            on :attr:`device`.
        """
        order, params = self._plan(self.epoch)
        return self._batches(order, params)

    def _batches(self, order: Tensor, params: Tensor | None) -> Iterator[tuple[Tensor, Tensor]]:
        size, count = self.local_batch_size, len(self)
        for b in range(count):
            start = b * size
            stop = len(order) if b == count - 1 else start + size  # the last takes what is left
            index = order[start:stop]
            x = self.images[index]  # (B, C, H, W) uint8
            if self.augment is not None and params is not None:
                x = self.augment.apply(x, params[start:stop])
            x = x.float().sub_(self._mean255).div_(self._std255)
            if self.resize is not None and x.shape[-2:] != (self.resize, self.resize):
                x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear")
            yield x, self.labels[index]

    def _replace(self, images: Tensor, labels: Tensor, rank: int, world_size: int) -> Loader:
        loader = Loader(
            images,
            labels,
            batch_size=self.batch_size,
            mean=self.mean,
            std=self.std,
            shuffle=self.shuffle,
            drop_last=self.drop_last,
            augment=self.augment,
            resize=self.resize,
            seed=self.seed,
            rank=rank,
            world_size=world_size,
        )
        loader.epoch = self.epoch
        return loader

    def head(self, n: int) -> Loader:
        """The first ``n`` samples (all of them if there are fewer), with the same settings.

        A fixed subset, for a quicker evaluation (the stored order, not a random draw).

        Args:
            n: how many samples to keep.

        Returns:
            A new loader sharing this one's image tensor (no copy).
        """
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        return self._replace(self.images[:n], self.labels[:n], self.rank, self.world_size)

    def to(self, device: torch.device | str) -> Loader:
        """This loader with its images and labels on ``device`` (copied once).

        Args:
            device: the target device.

        Returns:
            ``self`` when the data are there already, else a new loader (same settings and epoch).
        """
        device = torch.device(device)
        here = self.device
        if device.type == here.type and device.index in (None, here.index):
            return self
        return self._replace(
            self.images.to(device), self.labels.to(device), self.rank, self.world_size
        )

    def shard(self, rank: int, world_size: int) -> Loader:
        """The part of every epoch that rank ``rank`` of ``world_size`` processes.

        The new loader shares this one's image tensor (no copy). See the class docstring for how
        an epoch is shared out.

        Args:
            rank: this process's index, ``0 <= rank < world_size``.
            world_size: number of processes; must divide ``batch_size``.

        Returns:
            A loader yielding batches of ``batch_size // world_size``.
        """
        return self._replace(self.images, self.labels, rank, world_size)

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        shard = f", rank={self.rank}/{self.world_size}" if self.world_size > 1 else ""
        return (
            f"Loader({n} x {c}x{h}x{w} on {self.device}, batch_size={self.batch_size}{shard}, "
            f"shuffle={self.shuffle}, augment={self.augment}, resize={self.resize}, "
            f"seed={self.seed}, epoch={self.epoch})"
        )
