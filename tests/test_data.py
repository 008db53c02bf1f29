"""convlab.data: determinism, sharding, augmentation, normalization and the data set factories."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from convlab import data
from convlab.data import (
    Augment,
    DatasetUnavailable,
    ImageData,
    Loader,
    channel_stats,
    random_crop_flip,
)

ROOT = Path(__file__).resolve().parents[1]
N = 50  # samples in the small loaders below; labels are sample ids 0..N-1


def make_loader(**changes) -> Loader:
    """50 random 3x8x8 images (values 1..255, so any 0 comes from padding); label = sample id."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(1, 256, (N, 3, 8, 8), generator=g, dtype=torch.uint8)
    settings = {
        "batch_size": 8,
        "mean": (0.5, 0.4, 0.3),
        "std": (0.2, 0.25, 0.3),
        "shuffle": True,
        "augment": Augment(pad=2),
    }
    settings.update(changes)
    return Loader(images, torch.arange(N), **settings)


def run_epoch(loader: Loader, epoch: int) -> list[tuple[Tensor, Tensor]]:
    loader.set_epoch(epoch)
    return list(loader)


def same_batches(a: list[tuple[Tensor, Tensor]], b: list[tuple[Tensor, Tensor]]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b, strict=True)
    )


def raw_pixels(x: Tensor, loader: Loader) -> Tensor:
    """Undo the normalization: the uint8 values the batch was made from."""
    mean = torch.tensor(loader.mean).view(1, -1, 1, 1)
    std = torch.tensor(loader.std).view(1, -1, 1, 1)
    return ((x * std + mean) * 255).round().to(torch.uint8)


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_and_epoch_give_identical_batches_whatever_ran_before():
    torch.manual_seed(1)
    fresh = run_epoch(make_loader(), 3)
    resumed = make_loader()
    for epoch in range(3):  # epochs 0, 1, 2 run first in this process ...
        run_epoch(resumed, epoch)
    torch.manual_seed(2)  # ... and the global generator is elsewhere
    torch.rand(1000)
    assert same_batches(fresh, run_epoch(resumed, 3))


def test_epochs_and_seeds_change_order_and_augmentation():
    loader = make_loader()
    epoch3, epoch4 = run_epoch(loader, 3), run_epoch(loader, 4)
    assert not torch.equal(epoch3[0][1], epoch4[0][1])
    other_seed = run_epoch(make_loader(seed=1), 3)
    assert not torch.equal(epoch3[0][1], other_seed[0][1])
    # augmentation alone changes with the epoch: unshuffled order, same samples, other crops
    still = make_loader(shuffle=False)
    assert not torch.equal(run_epoch(still, 3)[0][0], run_epoch(still, 4)[0][0])


def test_only_set_epoch_changes_the_epoch():
    loader = make_loader()
    assert loader.epoch == 0
    first, second = list(loader), list(loader)
    assert loader.epoch == 0 and same_batches(first, second)
    assert not same_batches(first, run_epoch(loader, 1))
    assert loader.epoch == 1 and loader.shard(0, 2).epoch == loader.to("meta").epoch == 1


def test_no_global_random_state_is_read_or_consumed():
    loader = make_loader()
    state = torch.get_rng_state()
    list(loader)
    random_crop_flip(loader.images, 2, torch.Generator().manual_seed(0))
    assert torch.equal(state, torch.get_rng_state())


# --- order, sizes and sharding ---------------------------------------------------------------------


def test_unshuffled_loader_keeps_the_stored_order():
    loader = make_loader(shuffle=False, augment=None)
    xs, ys = zip(*loader, strict=True)
    assert torch.equal(torch.cat(ys), torch.arange(N))
    assert torch.equal(raw_pixels(torch.cat(xs), loader), loader.images)


def test_a_shuffled_epoch_visits_every_sample_once():
    ids = torch.cat([y for _, y in make_loader()])
    assert not torch.equal(ids, torch.arange(N))
    assert torch.equal(ids.sort().values, torch.arange(N))


@pytest.mark.parametrize(
    ("batch_size", "world_size", "shuffle", "drop_last", "num_samples", "num_batches"),
    [
        (8, 1, True, False, [50], [7]),
        (8, 1, True, True, [48], [6]),
        (8, 2, True, False, [25, 25], [6, 6]),  # 6 x 4 + 1: the last one folded in
        (8, 4, True, False, [12, 12, 12, 12], [6, 6, 6, 6]),  # 2 samples dropped
        (8, 4, False, False, [13, 13, 12, 12], [7, 7, 6, 6]),  # evaluation: nothing dropped
        (8, 4, False, True, [12, 12, 12, 12], [6, 6, 6, 6]),
    ],
)
def test_len_and_num_samples_count_what_iteration_yields(
    batch_size, world_size, shuffle, drop_last, num_samples, num_batches
):
    base = make_loader(batch_size=batch_size, shuffle=shuffle, drop_last=drop_last)
    for rank in range(world_size):
        shard = base.shard(rank, world_size)
        sizes = [len(y) for _, y in shard]
        assert (shard.num_samples, len(shard)) == (num_samples[rank], num_batches[rank])
        assert (sum(sizes), len(sizes)) == (num_samples[rank], num_batches[rank])
        assert sizes[:-1] == [batch_size // world_size] * (len(sizes) - 1)
        assert shard.local_batch_size == batch_size // world_size


@pytest.mark.parametrize("shuffle", [True, False])
def test_shards_split_every_epoch_disjointly(shuffle):
    base = make_loader(shuffle=shuffle)
    ids = [torch.cat([y for _, y in run_epoch(base.shard(r, 4), 5)]) for r in range(4)]
    seen = torch.cat(ids)
    assert len(seen.unique()) == len(seen)  # disjoint
    counts = {len(i) for i in ids}
    if shuffle:  # training: equal counts, the remainder (N % 4) dropped
        assert counts == {N // 4} and len(seen) == N - N % 4
    else:  # evaluation: everything, counts within one sample
        assert max(counts) - min(counts) <= 1 and torch.equal(seen.sort().values, torch.arange(N))


def test_shards_together_give_the_unsharded_batches_augmentation_included():
    base = make_loader(batch_size=10)
    whole = run_epoch(base, 7)
    parts = [run_epoch(base.shard(rank, 2), 7) for rank in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(whole) == 5
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *parts, strict=True):
        order, merged = y.argsort(), torch.cat([y0, y1]).argsort()
        assert torch.equal(y[order], torch.cat([y0, y1])[merged])
        assert torch.equal(x[order], torch.cat([x0, x1])[merged])


@pytest.mark.parametrize(
    ("batch_size", "world_size"),
    [(7, 1), (8, 2)],  # 50 = 7 * 7 + 1; each of 2 ranks: 25 = 6 * 4 + 1
)
def test_a_training_loader_folds_a_last_batch_of_one_into_the_previous_one(batch_size, world_size):
    base = make_loader(batch_size=batch_size)
    seen = []
    for rank in range(world_size):
        shard = base.shard(rank, world_size)
        batches = run_epoch(shard, 3)
        sizes = [len(y) for _, y in batches]
        assert min(sizes) >= 2, f"rank {rank}: batches of {sizes}"
        assert sizes == [shard.local_batch_size] * (len(sizes) - 1) + [shard.local_batch_size + 1]
        assert (len(shard), shard.num_samples) == (len(sizes), sum(sizes))
        ids = torch.cat([y for _, y in batches])
        assert torch.equal(ids, shard.indices(3)), "the batches left the epoch's order"
        seen.append(ids)
    assert torch.equal(torch.cat(seen).sort().values, torch.arange(N)), "samples left out"


@pytest.mark.parametrize(("batch_size", "world_size"), [(7, 1), (8, 2)])
def test_an_evaluation_loader_keeps_its_last_batch_of_one(batch_size, world_size):
    base = make_loader(batch_size=batch_size, shuffle=False, augment=None)
    ids = []
    for rank in range(world_size):
        sizes = [len(y) for _, y in base.shard(rank, world_size)]
        assert sizes[-1] == 1  # harmless in evaluation mode, and every sample counts
        ids += [y for _, y in base.shard(rank, world_size)]
    assert torch.equal(torch.cat(ids).sort().values, torch.arange(N))


def test_shard_shares_the_images_and_checks_the_batch_size():
    base = make_loader()
    shard = base.shard(1, 2)
    assert shard.images is base.images
    assert (shard.rank, shard.world_size, shard.batch_size) == (1, 2, 8)
    with pytest.raises(ValueError, match="divisible"):
        base.shard(0, 3)
    with pytest.raises(ValueError, match="rank"):
        base.shard(2, 2)


def test_loader_rejects_what_it_cannot_batch():
    images = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(TypeError, match="uint8"):
        Loader(images.float(), torch.arange(4), batch_size=2, mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="per channel"):
        Loader(images, torch.arange(4), batch_size=2, mean=(0.5, 0.5), std=(0.5,))
    with pytest.raises(ValueError, match="labels"):
        Loader(images, torch.arange(3), batch_size=2, mean=(0.5,), std=(0.5,))


# --- normalization, dtypes, devices, resize ---------------------------------------------------------


def test_batches_are_normalized_with_the_given_statistics():
    g = torch.Generator().manual_seed(0)
    images = torch.stack(
        [
            torch.randint(0, 80, (200, 8, 8), generator=g),
            torch.randint(100, 256, (200, 8, 8), generator=g),
        ],
        dim=1,
    ).to(torch.uint8)
    mean, std = channel_stats(images)
    pooled = images.double().div(255).transpose(0, 1).reshape(2, -1)
    assert np.allclose(mean, pooled.mean(1)) and np.allclose(std, pooled.std(1, correction=0))
    loader = Loader(images, torch.zeros(200, dtype=torch.int64), batch_size=64, mean=mean, std=std)
    x = torch.cat([x for x, _ in loader]).double()
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(2, dtype=x.dtype), atol=1e-5)
    assert torch.allclose(
        x.std(dim=(0, 2, 3), correction=0), torch.ones(2, dtype=x.dtype), atol=1e-5
    )
    # one pixel by hand: (x / 255 - mean) / std
    expected = (images[0, 1, 0, 0].item() / 255 - mean[1]) / std[1]
    assert x[0, 1, 0, 0].item() == pytest.approx(expected, abs=1e-5)


def test_batches_are_float32_and_int64_on_the_loader_device():
    loader = make_loader()
    x, y = next(iter(loader))
    assert (x.dtype, y.dtype, x.shape) == (torch.float32, torch.int64, (8, 3, 8, 8))
    assert x.device == y.device == loader.device == torch.device("cpu")
    assert loader.to("cpu") is loader
    moved = loader.to("meta")  # a second device that every machine has
    assert moved is not loader and moved.images.device.type == "meta"
    assert (moved.epoch, moved.augment, moved.seed) == (loader.epoch, loader.augment, loader.seed)
    x, y = next(iter(moved))
    assert x.device.type == y.device.type == "meta" and x.shape == (8, 3, 8, 8)


def test_resize_is_bilinear_after_normalization():
    plain = run_epoch(make_loader(augment=None), 0)
    resized = run_epoch(make_loader(augment=None, resize=16), 0)
    x, x16 = plain[0][0], resized[0][0]
    assert x16.shape == (8, 3, 16, 16) and x16.dtype == torch.float32
    assert torch.allclose(x16, F.interpolate(x, size=(16, 16), mode="bilinear"), atol=1e-6)


# --- augmentation ----------------------------------------------------------------------------------


def test_flip_mirrors_a_known_image():
    x = torch.arange(2 * 1 * 2 * 4, dtype=torch.uint8).view(2, 1, 2, 4)
    out = Augment(pad=0, flip=True).apply(x, torch.tensor([[0, 0, 1], [0, 0, 0]]))
    assert out[0, 0].tolist() == [[3, 2, 1, 0], [7, 6, 5, 4]]
    assert torch.equal(out[1], x[1])


def test_crop_shifts_the_content_and_pads_with_zeros():
    x = torch.arange(1, 17, dtype=torch.uint8).view(1, 1, 4, 4)
    augment = Augment(pad=1, flip=False)
    corner = augment.apply(x, torch.tensor([[0, 0, 0]]))[0, 0]  # window at the padded corner
    assert corner[0].tolist() == [0, 0, 0, 0] and corner[:, 0].tolist() == [0, 0, 0, 0]
    assert torch.equal(corner[1:, 1:], x[0, 0, :3, :3])  # content moved down and right
    assert torch.equal(augment.apply(x, torch.tensor([[1, 1, 0]])), x)  # centred window
    reflect = Augment(pad=1, flip=False, padding_mode="reflect")
    mirrored = reflect.apply(x, torch.tensor([[0, 0, 0]]))[0, 0]
    assert mirrored[0].tolist() == [6, 5, 6, 7]  # row -1 is row 1, column -1 is column 1


def test_random_crop_flip_gives_a_padded_window_of_each_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (64, 2, 5, 5), generator=g, dtype=torch.uint8)
    out = random_crop_flip(x, 2, torch.Generator().manual_seed(1))
    padded = F.pad(x, (2, 2, 2, 2))
    windows = torch.stack(
        [padded[..., dy : dy + 5, dx : dx + 5] for dy in range(5) for dx in range(5)], dim=1
    )  # (64, 25, 2, 5, 5)
    plain = (windows == out[:, None]).flatten(2).all(2).any(1)
    flipped = (windows.flip(-1) == out[:, None]).flatten(2).all(2).any(1)
    assert bool((plain | flipped).all())
    assert 10 < int((flipped & ~plain).sum()) < 54  # about half are mirrored
    assert (out == 0).any()  # some windows reach into the zero padding
    again = random_crop_flip(x, 2, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    assert not torch.equal(out, random_crop_flip(x, 2, torch.Generator().manual_seed(2)))


def test_augment_without_flip_never_flips():
    g = torch.Generator().manual_seed(0)
    assert int(Augment(pad=0, flip=False).sample(100, g)[:, 2].sum()) == 0
    assert 20 < int(Augment(pad=0, flip=True).sample(100, g)[:, 2].sum()) < 80


def test_the_loader_applies_its_augmentation():
    plain = make_loader(shuffle=False, augment=None)
    augmented = make_loader(shuffle=False)
    x_plain, y_plain = next(iter(plain))
    x_aug, y_aug = next(iter(augmented))
    assert torch.equal(y_plain, y_aug)
    assert not torch.equal(x_plain, x_aug)
    assert (raw_pixels(x_aug, augmented) == 0).any()  # zero padding; the images have no zeros


# --- data sets -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_data() -> ImageData:
    return data.digits(device="cpu")


def test_digits_split_is_fixed_stratified_and_complete(digit_data):
    d = digit_data
    assert (len(d.train.labels), len(d.test.labels)) == (1437, 360)
    assert d.train.images.shape == (1437, 1, 28, 28) and d.train.images.dtype == torch.uint8
    assert (d.num_classes, d.in_channels, d.image_size, d.name) == (10, 1, 28, "digits")
    assert torch.bincount(d.test.labels).tolist() == pytest.approx([36] * 10, abs=1)
    other = data.digits(device="cpu", seed=1, size=12)
    assert other.image_size == 12 and other.train.images.shape[-1] == 12
    assert torch.equal(d.test.labels, other.test.labels)  # the split ignores the seed ...
    y0, y1 = next(iter(d.train))[1], next(iter(other.train))[1]
    assert not torch.equal(y0, y1)  # ... which drives the order
    assert (
        d.train.augment is None
        and data.digits(device="cpu", augment=True).train.augment.flip is False
    )


def test_digits_are_normalized_with_their_training_statistics(digit_data):
    d = digit_data
    assert d.mean == pytest.approx(channel_stats(d.train.images)[0])
    assert d.train.mean == d.test.mean == d.mean
    x = torch.cat([x for x, _ in d.train]).double()
    assert abs(x.mean().item()) < 1e-4 and abs(x.std(correction=0).item() - 1) < 1e-4


def test_synthetic_images_are_learnable_and_fixed():
    d = data.synthetic(device="cpu")
    assert (len(d.train.labels), len(d.test.labels), d.image_size, d.in_channels) == (
        410,
        102,
        32,
        3,
    )
    train_x = torch.cat([x for x, _ in d.train]).flatten(1)
    train_y = torch.cat([y for _, y in d.train])
    centroids = torch.stack([train_x[train_y == k].mean(0) for k in range(d.num_classes)])
    test_x, test_y = (torch.cat(t) for t in zip(*d.test, strict=True))
    guess = torch.cdist(test_x.flatten(1), centroids).argmin(1)
    assert (guess == test_y).float().mean() > 0.5  # chance is 0.1
    assert torch.equal(data.synthetic(device="cpu", seed=3).train.images, d.train.images)


def test_image_data_moves_both_loaders_and_is_frozen():
    d = data.synthetic(num_samples=40, batch_size=8, device="cpu")
    moved = d.to("meta")
    assert moved.train.device.type == moved.test.device.type == "meta"
    assert (moved.classes, moved.mean) == (d.classes, d.mean)
    assert d.to("cpu").train is d.train
    with pytest.raises(FrozenInstanceError):
        d.num_classes = 3  # type: ignore[misc]


# --- torchvision data sets, offline --------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch, tmp_path_factory):
    """Make every urllib request fail at once; record the socket timeout it was made under.

    The operating system's copy of Fashion-MNIST is hidden too (an empty folder in its place),
    so that only what a test puts under its own root can be found.
    """
    monkeypatch.setattr(data, "SYSTEM_FASHION_MNIST", str(tmp_path_factory.mktemp("no-system")))
    timeouts: list[float | None] = []

    def refuse(*args, **kwargs):
        timeouts.append(socket.getdefaulttimeout())
        raise urllib.error.URLError("network switched off by the test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return timeouts


@pytest.mark.parametrize(
    ("factory", "folder", "files"),
    [
        (
            data.fashion_mnist,
            "FashionMNIST/raw",
            ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
        ),
        (data.cifar10, "cifar-10-batches-py", ["data_batch_1", "test_batch", "batches.meta"]),
    ],
)
def test_a_failed_download_says_what_was_tried_and_where_to_put_files(
    factory, folder, files, tmp_path, no_network
):
    root = tmp_path / "data"
    with pytest.raises(DatasetUnavailable) as caught:
        factory(root, device="cpu")
    message = str(caught.value)
    assert "\n" not in message and isinstance(caught.value, RuntimeError)
    assert "torchvision's download" in message and "http" in message
    assert "network switched off by the test" in message
    assert str(root / folder) in message and all(name in message for name in files)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert no_network and all(t == data.DOWNLOAD_TIMEOUT_S for t in no_network)
    assert socket.getdefaulttimeout() is None  # restored


@pytest.mark.parametrize("factory", [data.fashion_mnist, data.cifar10])
def test_missing_files_without_download(factory, tmp_path, no_network):
    with pytest.raises(DatasetUnavailable, match=r"download=False.*by hand"):
        factory(tmp_path, device="cpu", download=False)
    assert not no_network  # nothing was fetched


def test_cifar10_files_are_checked_against_their_md5_sums(tmp_path, no_network):
    # torchvision verifies every CIFAR-10 batch file, so hand-made ones are refused
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"):
        (folder / name).write_bytes(b"not the real file")
    (folder / "test_batch").write_bytes(b"not the real file")
    with pytest.raises(DatasetUnavailable, match="corrupted"):
        data.cifar10(tmp_path, device="cpu", download=False)


def write_idx(path: Path, array: np.ndarray) -> None:
    """The idx format of the MNIST files: magic (0, 0, uint8 code 8, ndim), big-endian sizes, bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_hand_placed_fashion_mnist_files_are_used(tmp_path, no_network):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    splits = {"train": 12, "t10k": 6}
    arrays = {}
    for split, n in splits.items():
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
        arrays[split] = images, labels
    with pytest.raises(DatasetUnavailable, match=r"not Fashion-MNIST's train-images.*MD5"):
        data.fashion_mnist(tmp_path, device="cpu")  # made-up images are refused by default
    d = data.fashion_mnist(tmp_path, batch_size=4, device="cpu", resize=32, verify=False)
    assert not no_network  # found on disk, nothing fetched
    assert torch.equal(d.train.images, torch.from_numpy(arrays["train"][0]).unsqueeze(1))
    assert torch.equal(d.test.labels, torch.from_numpy(arrays["t10k"][1]).long())
    assert (d.name, d.num_classes, d.in_channels, d.image_size) == ("fashion_mnist", 10, 1, 32)
    assert d.classes[0] == "T-shirt/top" and d.mean == data.FASHION_MNIST_MEAN
    assert d.train.augment is None and next(iter(d.train))[0].shape == (4, 1, 32, 32)
    augmented = data.fashion_mnist(
        tmp_path, device="cpu", augment=True, download=False, verify=False
    )
    assert augmented.train.augment == data.FASHION_MNIST_AUGMENT and augmented.test.augment is None


def test_cifar10_arrays_become_nchw_with_train_augmentation(monkeypatch):
    import torchvision.datasets

    class FakeCIFAR10:
        url = "https://example.invalid/cifar-10-python.tar.gz"

        def __init__(self, root, train, download):
            n = 6 if train else 4
            rng = np.random.default_rng(int(train))
            self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)  # HWC, as stored
            self.targets = [k % 10 for k in range(n)]
            self.classes = ["airplane", "automobile", "bird", "cat", "deer"]
            self.classes += ["dog", "frog", "horse", "ship", "truck"]

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    d = data.cifar10("unused", batch_size=2, device="cpu")
    hwc = FakeCIFAR10("unused", train=True, download=False).data
    assert d.train.images.shape == (6, 3, 32, 32) and d.train.images.is_contiguous()
    assert torch.equal(d.train.images[2, 1], torch.from_numpy(hwc[2, :, :, 1]))
    assert d.test.labels.tolist() == [0, 1, 2, 3]
    assert d.train.augment == data.CIFAR10_AUGMENT == Augment(pad=4, flip=True)
    assert d.test.augment is None and (d.mean, d.std) == (data.CIFAR10_MEAN, data.CIFAR10_STD)
    assert data.cifar10("unused", device="cpu", augment=False).train.augment is None


def test_importing_convlab_data_loads_neither_torchvision_nor_sklearn():
    code = (
        "import sys, convlab.data; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torchvision', 'sklearn'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the real Fashion-MNIST (Debian's dataset-fashion-mnist, installed by make test) ------------


@pytest.fixture(scope="module")
def system_copy() -> Path:
    """The operating system's Fashion-MNIST folder; its absence fails CI and skips elsewhere."""
    folder = Path(data.SYSTEM_FASHION_MNIST)
    if not all((folder / f"{name}.gz").exists() for name in data.FASHION_MNIST_FILES):
        message = (
            f"the real Fashion-MNIST is not in {folder}: make test installs it as root on Debian "
            "or Ubuntu (apt-get install dataset-fashion-mnist)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="module")
def real(system_copy) -> ImageData:
    return data.fashion_mnist(ROOT / "tests" / "no-such-folder", device="cpu", download=False)


def test_the_real_fashion_mnist_has_its_published_statistics(real):
    assert (len(real.train.labels), len(real.test.labels)) == (60_000, 10_000)
    assert real.train.images.shape[1:] == real.test.images.shape[1:] == (1, 28, 28)
    assert real.train.labels.bincount().tolist() == [6_000] * 10
    assert real.test.labels.bincount().tolist() == [1_000] * 10
    mean, std = channel_stats(real.train.images)
    assert mean == pytest.approx(data.FASHION_MNIST_MEAN, abs=1e-4)
    assert std == pytest.approx(data.FASHION_MNIST_STD, abs=1e-4)
    assert real.classes[9] == "Ankle boot" and real.num_classes == 10


def test_the_system_copy_is_found_without_being_told_and_said_so(system_copy, tmp_path, capsys):
    data.fashion_mnist(tmp_path, device="cpu", download=False)
    line = capsys.readouterr().out.strip()
    assert line == f"Fashion-MNIST: the system's copy in {system_copy} (content checked)"
    assert not (tmp_path / "FashionMNIST").exists()  # read in place, nothing copied or fetched


def test_content_sums_match_the_system_files_whose_gz_bytes_differ(system_copy):
    from torchvision.datasets import FashionMNIST

    gz_sums = dict(FashionMNIST.resources)
    for name, md5 in data.FASHION_MNIST_FILES.items():
        gz = system_copy / f"{name}.gz"
        assert data.read_idx(gz)[1] == md5
        # recompressed: torchvision's own check of the .gz would refuse this very copy
        assert hashlib.md5(gz.read_bytes()).hexdigest() != gz_sums[f"{name}.gz"]


def copy_real(system_copy: Path, root: Path) -> Path:
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data.FASHION_MNIST_FILES:
        shutil.copy(system_copy / f"{name}.gz", raw / f"{name}.gz")
    return raw


def test_a_copy_under_root_comes_first(system_copy, tmp_path, capsys):
    raw = copy_real(system_copy, tmp_path)
    d = data.fashion_mnist(tmp_path, device="cpu", download=False)
    assert capsys.readouterr().out.strip() == f"Fashion-MNIST: found in {raw} (content checked)"
    assert len(d.test.labels) == 10_000


@pytest.mark.parametrize("damage", ["truncated gz", "truncated idx", "one pixel changed"])
def test_a_damaged_file_is_refused_with_what_to_do(system_copy, tmp_path, damage):
    raw = copy_real(system_copy, tmp_path)
    gz = raw / "t10k-images-idx3-ubyte.gz"
    content = gzip.decompress(gz.read_bytes())
    if damage == "truncated gz":
        gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
        expected = r"cannot read .*t10k-images-idx3-ubyte\.gz.*fetch it again"
    elif damage == "truncated idx":
        gz.unlink()  # an unpacked file is read before a .gz one
        (raw / "t10k-images-idx3-ubyte").write_bytes(content[:-784])
        expected = r"holds 7,839,232 bytes, but its header .* says 7,840,016: a partial"
    else:
        changed = bytearray(content)
        changed[16 + 28 * 14 + 14] ^= 1  # one pixel of the first test image
        gz.write_bytes(gzip.compress(bytes(changed)))
        expected = r"not Fashion-MNIST's t10k-images-idx3-ubyte: its content's MD5 sum"
    with pytest.raises(DatasetUnavailable, match=expected):
        data.fashion_mnist(tmp_path, device="cpu", download=False)


def test_without_any_copy_the_message_names_the_package(no_network, tmp_path):
    with pytest.raises(DatasetUnavailable, match="apt-get install dataset-fashion-mnist"):
        data.fashion_mnist(tmp_path, device="cpu")
    assert no_network  # the download was tried last


def test_cifar10_statistics_are_recomputed_when_its_files_are_here():
    # no package ships CIFAR-10: only torchvision's download brings it (Colab, instructors)
    if not (ROOT / "data" / "cifar-10-batches-py" / "data_batch_1").exists():
        pytest.skip("CIFAR-10 comes only from torchvision's download (no network here)")
    d = data.cifar10(ROOT / "data", device="cpu", download=False)
    measured_mean, measured_std = channel_stats(d.train.images)
    assert measured_mean == pytest.approx(data.CIFAR10_MEAN, abs=1e-4)
    assert measured_std == pytest.approx(data.CIFAR10_STD, abs=1e-4)
