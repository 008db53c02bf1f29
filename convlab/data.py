"""Image data sets held on the training device: the factories and the facts a model needs.

Factories return an :class:`ImageData` (train and test loaders plus the data set's facts):
:func:`fashion_mnist` from its idx files (on disk, from the operating system's package, or
downloaded by torchvision), :func:`cifar10` through ``torchvision.datasets`` (downloaded only: no
package ships it; torchvision is imported only when called, so ``import convlab`` never loads
it), :func:`digits` from scikit-learn (offline),
and :func:`synthetic`, learnable images made up on the spot.

The loaders themselves (batches by index, augmentation and normalization per batch, on the
device) are :mod:`convlab.loader`'s; :class:`Loader`, :class:`Augment` and
:func:`random_crop_flip` are re-exported here, so ``from convlab.data import Loader`` works.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from convlab.device import default_device
from convlab.loader import Augment, Loader, random_crop_flip

__all__ = [
    "CIFAR10_AUGMENT",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DOWNLOAD_TIMEOUT_S",
    "FASHION_MNIST_AUGMENT",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "SYSTEM_FASHION_MNIST",
    "Augment",
    "DatasetUnavailable",
    "ImageData",
    "Loader",
    "channel_stats",
    "cifar10",
    "digits",
    "fashion_mnist",
    "random_crop_flip",
    "read_idx",
    "synthetic",
]

# Per-channel mean and standard deviation of the *training* split (60,000 Fashion-MNIST, 50,000
# CIFAR-10 images), on the [0, 1] pixel scale: every pixel of every training image pooled,
# population standard deviation, which is what `channel_stats` computes. These are the widely
# published figures; tests/test_data.py recomputes them whenever the files are in data/. The often
# copied CIFAR-10 std (0.2023, 0.1994, 0.2010) averages per-image deviations: not the data set's.
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

# Seconds one socket operation (connect, read) may stall before a download is abandoned. It bounds
# each stall, not the whole download; set only while torchvision downloads and only when no
# process-wide default timeout is set already.
DOWNLOAD_TIMEOUT_S = 30.0

# The train/test split of `digits` and the images of `synthetic` are fixed: their own seed, never
# the `seed` argument, which drives only the batch order and the augmentation.
_FIXED_DATA_SEED = 0


# Train-split augmentation of the factories. CIFAR-10: He et al. (2016, Sec. 4.2). Fashion-MNIST:
# a 2-pixel shift (garments fill more of their 28x28 frame than CIFAR's objects do) and flips
# (every class is left-right symmetric as a category); a course default, not a tuned value.
CIFAR10_AUGMENT = Augment(pad=4, flip=True)
FASHION_MNIST_AUGMENT = Augment(pad=2, flip=True)
# A mirrored digit is another glyph (or none): shifts only.
_DIGITS_AUGMENT = Augment(pad=2, flip=False)


class DatasetUnavailable(RuntimeError):
    """A data set could be neither found on disk nor downloaded; the message says where to put it."""


@dataclass(frozen=True)
class ImageData:
    """A data set ready to train on: its two loaders and the facts a model needs.

    Attributes:
        name: the factory's name (``"cifar10"``).
        train: the training loader (shuffled, augmented if asked).
        test: the evaluation loader (stored order, no augmentation).
        num_classes: number of classes.
        in_channels: image channels.
        image_size: side of the images the loaders yield (after ``resize``).
        classes: class names, index order.
        mean: per-channel mean used for normalization ([0, 1] scale, training split).
        std: per-channel standard deviation, same units.
    """

    name: str
    train: Loader
    test: Loader
    num_classes: int
    in_channels: int
    image_size: int
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to(self, device: torch.device | str) -> ImageData:
        """The same data with both loaders on ``device``.

        Args:
            device: the target device.

        Returns:
            A new :class:`ImageData` (loaders already there are kept as they are).
        """
        return replace(self, train=self.train.to(device), test=self.test.to(device))


def channel_stats(images: Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population standard deviation of ``uint8`` images, on the [0, 1] scale.

    Sums are exact integers accumulated ``chunk`` images at a time, so memory stays small.

    Args:
        images: the images.
        chunk: images per partial sum.

    Returns:
        ``(mean, std)``, one value per channel each.

    Shape:
        images: ``(N, C, H, W)``.
    """
    n, c, h, w = images.shape
    total = torch.zeros(c, dtype=torch.int64, device=images.device)
    squares = torch.zeros(c, dtype=torch.int64, device=images.device)
    for start in range(0, n, chunk):
        part = images[start : start + chunk].to(torch.int64)
        total += part.sum(dim=(0, 2, 3))
        squares += part.square().sum(dim=(0, 2, 3))
    count = n * h * w
    mean = total.double() / count
    var = squares.double() / count - mean.square()
    std = var.clamp_min(0).sqrt()
    return tuple((mean / 255).tolist()), tuple((std / 255).tolist())


def _image_data(
    name: str,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    classes: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    *,
    batch_size: int,
    resize: int | None,
    device: torch.device | str | None,
    seed: int,
    augment: Augment | None,
) -> ImageData:
    device = default_device() if device is None else torch.device(device)

    def loader(split: tuple[Tensor, Tensor], training: bool) -> Loader:
        images, labels = split
        return Loader(
            images.to(device),
            labels.to(device),
            batch_size=batch_size,
            mean=mean,
            std=std,
            shuffle=training,
            augment=augment if training else None,
            resize=resize,
            seed=seed,
        )

    _, channels, height, _ = train[0].shape
    return ImageData(
        name=name,
        train=loader(train, training=True),
        test=loader(test, training=False),
        num_classes=len(classes),
        in_channels=channels,
        image_size=height if resize is None else resize,
        classes=tuple(classes),
        mean=tuple(mean),
        std=tuple(std),
    )


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound each socket stall (urllib has no timeout of its own) unless one is set already."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _one_line(error: BaseException, limit: int = 160) -> str:
    """The last non-empty line of an error, whitespace collapsed: torchvision's own are multi-line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = re.sub(r"\s+", " ", lines[-1]) if lines else ""
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _torchvision_splits(
    class_name: str,
    title: str,
    root: str | os.PathLike[str],
    download: bool,
    folder: str,
    layout: str,
) -> tuple[Any, Any]:
    """Both splits of a torchvision data set, or :class:`DatasetUnavailable` with directions."""
    from torchvision import datasets  # here, not at the top: `import convlab` stays light

    cls = getattr(datasets, class_name)
    urls = ", ".join(getattr(cls, "mirrors", None) or [cls.url])
    where = os.path.join(os.fspath(root), folder)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            splits = (
                cls(os.fspath(root), train=True, download=download),
                cls(os.fspath(root), train=False, download=download),
            )
    except (OSError, RuntimeError) as error:
        if download:
            tried = f"torchvision's download of {class_name} from {urls} into {where} failed"
        else:
            tried = f"torchvision found no usable {class_name} in {where}, and download=False"
        message = (
            f"{title} is unavailable: {tried} ({_one_line(error)}). "
            f"Put the files there by hand: {layout}"
        )
        raise DatasetUnavailable(message) from None
    return splits


# Fashion-MNIST's four idx files, by name, with the MD5 sum of each file's *uncompressed* content.
# The sum of the content rather than of the .gz that torchvision checks: a copy compressed again
# (Debian's dataset-fashion-mnist package is one) has other .gz bytes and the very same images.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
# Where an operating system's package puts the files (Debian and Ubuntu: apt-get install
# dataset-fashion-mnist); searched after ``root``, before any download.
SYSTEM_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def _idx_file(folder: str | os.PathLike[str], name: str) -> str | None:
    """The file ``name`` or ``name.gz`` in ``folder`` (the unpacked one first), or None."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(os.fspath(folder), candidate)
        if os.path.isfile(path):
            return path
    return None


def read_idx(path: str | os.PathLike[str]) -> tuple[Tensor, str]:
    """Read one idx file of unsigned bytes (the MNIST format), plain or gzip-compressed.

    The header is four bytes (two zeros, the type code 8 for ``uint8``, the number of
    dimensions) and one big-endian 32-bit size per dimension; the values follow.

    Args:
        path: the file; a name ending in ``.gz`` is decompressed.

    Returns:
        The values as a ``uint8`` tensor of the header's shape, and the MD5 sum (hex) of the
        uncompressed bytes.

    Raises:
        DatasetUnavailable: the file is not an idx file of bytes, or it is shorter or longer
            than its header says (a partial download, say).
    """
    import gzip

    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except (OSError, EOFError) as error:  # gzip raises these for a truncated or broken archive
        raise DatasetUnavailable(
            f"cannot read {path}: {_one_line(error)}; delete it and fetch it again"
        ) from None
    if len(raw) < 4 or raw[:3] != bytes((0, 0, 8)):
        raise DatasetUnavailable(
            f"{path} is not an idx file of unsigned bytes (it starts {raw[:4].hex() or 'empty'}, "
            "expected 00000803 or 00000801); delete it and fetch it again"
        )
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DatasetUnavailable(
            f"{path} is cut short inside its header; delete it and fetch it again"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = 4 + 4 * ndim + math.prod(shape)
    if len(raw) != expected:
        raise DatasetUnavailable(
            f"{path} holds {len(raw):,} bytes, but its header ({' x '.join(map(str, shape))} "
            f"values) says {expected:,}: a partial or damaged copy; delete it and fetch it again"
        )
    digest = hashlib.md5(raw, usedforsecurity=False).hexdigest()
    values = torch.frombuffer(bytearray(raw[4 + 4 * ndim :]), dtype=torch.uint8).reshape(shape)
    return values, digest


def _read_fashion_mnist(folder: str, verify: bool) -> dict[str, Tensor]:
    """The four files of ``folder`` as tensors, each checked against its recorded content sum."""
    arrays = {}
    for name, md5 in FASHION_MNIST_FILES.items():
        path = _idx_file(folder, name)
        assert path is not None  # the caller found all four
        values, digest = read_idx(path)
        if verify and digest != md5:
            raise DatasetUnavailable(
                f"{path} is not Fashion-MNIST's {name}: its content's MD5 sum is {digest}, "
                f"expected {md5}; delete it (and its neighbours if they came with it) so that a "
                "good copy is found or downloaded, or pass verify=False for files you made"
            )
        arrays[name] = values
    return arrays


def _locate_fashion_mnist(root: str | os.PathLike[str], download: bool) -> tuple[str, str]:
    """The folder holding all four files and how it was found, downloading as a last resort."""
    own = os.path.join(os.fspath(root), "FashionMNIST", "raw")
    for folder, how in ((own, "found in"), (SYSTEM_FASHION_MNIST, "the system's copy in")):
        if all(_idx_file(folder, name) for name in FASHION_MNIST_FILES):
            return folder, how
    names = ", ".join(FASHION_MNIST_FILES)
    layout = (
        f"{own}{os.sep}{{{names}}} (unpacked idx files, or the four original files with .gz "
        f"appended). On Debian or Ubuntu, sudo apt-get install dataset-fashion-mnist puts them in "
        f"{SYSTEM_FASHION_MNIST}, where they are found without copying"
    )
    _torchvision_splits(
        "FashionMNIST", "Fashion-MNIST", root, download, os.path.join("FashionMNIST", "raw"), layout
    )
    return own, "downloaded into"


def fashion_mnist(
    root: str | os.PathLike[str] = "data",
    *,
    batch_size: int = 256,
    resize: int | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    download: bool = True,
    augment: bool = False,
    verify: bool = True,
    verbose: bool = True,
) -> ImageData:
    """Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017, arXiv:1708.07747): 28x28 grey garments.

    60,000 training and 10,000 test images of 10 classes, read from the first of these that holds
    the four idx files (plain or gzip-compressed):

    1. ``<root>/FashionMNIST/raw``, where torchvision keeps them;
    2. :data:`SYSTEM_FASHION_MNIST` (Debian's and Ubuntu's ``dataset-fashion-mnist`` package);
    3. torchvision's download into ``<root>/FashionMNIST/raw``, when ``download``.

    Each file's uncompressed content is checked against :data:`FASHION_MNIST_FILES`, so a copy
    compressed again is accepted and a damaged one is refused, never used. One line on standard
    output says which copy was read.

    Args:
        root: folder holding ``FashionMNIST/``.
        batch_size: samples per batch (both loaders).
        resize: side to resize batches to (e.g. 224 for ImageNet-sized models); ``None``: 28.
        device: where the images live and batches come out; default :func:`default_device`.
        seed: seed of the training order and augmentation.
        download: fetch the files when no copy is on disk.
        augment: train with :data:`FASHION_MNIST_AUGMENT` (2-pixel shifts, flips).
        verify: check the content sums (turn off only for files you made, in tests).
        verbose: print the line that says which copy was read.

    Returns:
        The data set; images ``(N, 1, 28, 28)`` ``uint8`` on ``device``.

    Raises:
        DatasetUnavailable: no copy is on disk and none could be downloaded, or a file is
            damaged or not Fashion-MNIST's; the message says what to do.
    """
    folder, how = _locate_fashion_mnist(root, download)
    arrays = _read_fashion_mnist(folder, verify)
    if verbose:
        checked = "content checked" if verify else "content not checked"
        print(f"Fashion-MNIST: {how} {folder} ({checked})")
    train = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    test = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    for (images, labels), split in ((train, "train"), (test, "t10k")):
        if images.dim() != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise DatasetUnavailable(
                f"{folder}: the {split} images {tuple(images.shape)} and labels "
                f"{tuple(labels.shape)} are not N 28x28 images with N labels"
            )
    return _image_data(
        "fashion_mnist",
        (train[0].unsqueeze(1), train[1].long()),
        (test[0].unsqueeze(1), test[1].long()),
        FASHION_MNIST_CLASSES,
        FASHION_MNIST_MEAN,
        FASHION_MNIST_STD,
        batch_size=batch_size,
        resize=resize,
        device=device,
        seed=seed,
        augment=FASHION_MNIST_AUGMENT if augment else None,
    )


def cifar10(
    root: str | os.PathLike[str] = "data",
    *,
    batch_size: int = 256,
    resize: int | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    download: bool = True,
    augment: bool = True,
) -> ImageData:
    """CIFAR-10 (Krizhevsky, 2009): 32x32 colour images of 10 classes.

    50,000 training and 10,000 test images, read by torchvision from the Python pickles in
    ``<root>/cifar-10-batches-py`` (downloaded and unpacked there if missing and ``download``;
    torchvision checks each file's MD5 sum). Unlike Fashion-MNIST, no operating-system package
    ships CIFAR-10: it needs internet access once, or the files copied there by hand.

    Args:
        root: folder holding ``cifar-10-batches-py/``.
        batch_size: samples per batch (both loaders).
        resize: side to resize batches to; ``None``: 32.
        device: where the images live and batches come out; default :func:`default_device`.
        seed: seed of the training order and augmentation.
        download: fetch the archive when the files are not on disk.
        augment: train with :data:`CIFAR10_AUGMENT` (zero-pad 4, random 32x32 crop, flip).

    Returns:
        The data set; images ``(N, 3, 32, 32)`` ``uint8`` on ``device``.

    Raises:
        DatasetUnavailable: the files are neither on disk nor downloadable; the message says
            where to put them.
    """
    base = os.fspath(root)
    where = os.path.join(base, "cifar-10-batches-py")
    layout = (
        f"{where}{os.sep}{{data_batch_1, ..., data_batch_5, test_batch, batches.meta}} "
        f"(cifar-10-python.tar.gz unpacked, or that archive itself as "
        f"{os.path.join(base, 'cifar-10-python.tar.gz')})"
    )
    train, test = _torchvision_splits(
        "CIFAR10", "CIFAR-10", root, download, "cifar-10-batches-py", layout
    )

    device = default_device() if device is None else torch.device(device)

    def tensors(split: Any) -> tuple[Tensor, Tensor]:
        hwc = torch.from_numpy(split.data).to(device)  # (N, H, W, C), as the pickles store it
        labels = torch.tensor(split.targets, dtype=torch.int64)
        return hwc.permute(0, 3, 1, 2).contiguous(), labels  # (N, C, H, W), on the device

    return _image_data(
        "cifar10",
        tensors(train),
        tensors(test),
        train.classes,
        CIFAR10_MEAN,
        CIFAR10_STD,
        batch_size=batch_size,
        resize=resize,
        device=device,
        seed=seed,
        augment=CIFAR10_AUGMENT if augment else None,
    )


def digits(
    *,
    size: int = 28,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    augment: bool = False,
) -> ImageData:
    """scikit-learn's handwritten digits: 1,797 8x8 images of 10 classes, shipped offline.

    The 17 grey levels (0..16) are scaled to 0..255, upsampled once to ``size x size``
    (bilinear) and stored as ``uint8``. The train/test split is stratified by class and fixed:
    it depends on ``test_fraction`` only, never on ``seed``. Mean and standard deviation are
    measured on the training split.

    Args:
        size: side of the stored images (28 suits the Fashion-MNIST models).
        batch_size: samples per batch (both loaders).
        device: where the images live and batches come out; default :func:`default_device`.
        seed: seed of the training order and augmentation.
        test_fraction: share of the images held out for testing.
        augment: train with 2-pixel shifts (no flips: a mirrored digit is another glyph).

    Returns:
        The data set; 1,437 training and 360 test images at the default ``test_fraction``.
    """
    from sklearn.datasets import load_digits  # imported here: it takes a second
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    grey = torch.from_numpy(bunch.images).float().mul(255 / 16).unsqueeze(1)  # (1797, 1, 8, 8)
    if size != grey.shape[-1]:
        grey = F.interpolate(grey, size=(size, size), mode="bilinear")
    images = grey.round().clamp(0, 255).to(torch.uint8)
    labels = torch.from_numpy(bunch.target).long()
    train_index, test_index = train_test_split(
        torch.arange(len(labels)).numpy(),
        test_size=test_fraction,
        stratify=bunch.target,
        random_state=_FIXED_DATA_SEED,
    )
    train_index, test_index = torch.from_numpy(train_index), torch.from_numpy(test_index)
    mean, std = channel_stats(images[train_index])
    return _image_data(
        "digits",
        (images[train_index], labels[train_index]),
        (images[test_index], labels[test_index]),
        tuple(str(k) for k in range(10)),
        mean,
        std,
        batch_size=batch_size,
        resize=None,
        device=device,
        seed=seed,
        augment=_DIGITS_AUGMENT if augment else None,
    )


def synthetic(
    *,
    num_samples: int = 512,
    num_classes: int = 10,
    image_size: int = 32,
    in_channels: int = 3,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> ImageData:
    """Learnable made-up images, for smoke tests and timing without any file.

    Class ``k`` is a sinusoidal grating at angle ``pi * k / num_classes`` (3 cycles per image,
    random phase per image) over a class-specific brightness per channel, plus Gaussian noise
    (standard deviation 20 grey levels). The images are fixed (their own seed): ``seed`` drives
    only the training order. The last fifth of the samples is the test split; labels cycle
    through the classes, so both splits are balanced.

    Args:
        num_samples: images in both splits together.
        num_classes: number of classes.
        image_size: side of the square images.
        in_channels: channels per image.
        batch_size: samples per batch (both loaders).
        device: where the images live and batches come out; default :func:`default_device`.
        seed: seed of the training order.

    Returns:
        The data set: ``num_samples - num_samples // 5`` training and ``num_samples // 5`` test
        images, normalized with the training split's statistics.
    """
    if num_samples // 5 < 1 or num_classes < 2:
        raise ValueError("synthetic needs num_samples >= 5 and num_classes >= 2")
    g = torch.Generator().manual_seed(_FIXED_DATA_SEED)
    labels = torch.arange(num_samples) % num_classes
    angle = math.pi * labels.double() / num_classes  # (N,)
    phase = torch.rand(num_samples, generator=g, dtype=torch.float64) * 2 * math.pi
    grid = torch.arange(image_size, dtype=torch.float64) / image_size
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")  # (S, S)
    along = xx * angle.cos()[:, None, None] + yy * angle.sin()[:, None, None]  # (N, S, S)
    wave = torch.cos(2 * math.pi * 3 * along + phase[:, None, None])
    # brightness of class k in channel c: a distinct level per class in every channel
    ranks = torch.stack([torch.randperm(num_classes, generator=g) for _ in range(in_channels)], 1)
    level = ranks.double() / (num_classes - 1) * 2 - 1  # (num_classes, C) in [-1, 1]
    noise = torch.randn(num_samples, in_channels, image_size, image_size, generator=g)
    x = 128 + 24 * level[labels][:, :, None, None] + 48 * wave[:, None] + 20 * noise.double()
    images = x.round().clamp(0, 255).to(torch.uint8)  # (N, C, S, S)
    num_test = num_samples // 5
    cut = num_samples - num_test
    mean, std = channel_stats(images[:cut])
    return _image_data(
        "synthetic",
        (images[:cut], labels[:cut]),
        (images[cut:], labels[cut:]),
        tuple(f"class {k}" for k in range(num_classes)),
        mean,
        std,
        batch_size=batch_size,
        resize=None,
        device=device,
        seed=seed,
        augment=None,
    )
