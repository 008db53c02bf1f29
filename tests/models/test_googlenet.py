"""GoogLeNet: torchvision parity (with and without auxiliary heads), the 2014 network's count."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torchvision
from torch import nn

from convlab.models.googlenet import (
    GoogLeNet,
    GoogLeNetOutputs,
    Inception,
    googlenet,
    googlenet_paper,
)
from tests.conftest import count_params

# torchvision before 0.21 returned the two auxiliary outputs in each other's fields (its
# issue 8736, fixed by pull request 8743); ours are in the fields their names say.
TORCHVISION_SWAPS_AUX = tuple(int(p) for p in torchvision.__version__.split(".")[:2]) < (0, 21)


def reference(**kwargs: bool) -> nn.Module:
    return torchvision.models.googlenet(weights=None, init_weights=True, **kwargs)


def test_matches_torchvision(parity: Callable[..., None]) -> None:
    ours = googlenet()
    assert count_params(ours) == 6_624_904
    parity(ours, reference(aux_logits=False), input_size=(64, 64))


def test_transform_input_matches_torchvision(parity: Callable[..., None]) -> None:
    ours = googlenet(transform_input=True)
    assert ours.transform_input is True
    parity(ours, reference(aux_logits=False, transform_input=True), input_size=(32, 32))
    with pytest.raises(ValueError, match="3 input channels"):
        googlenet(in_channels=1, transform_input=True)


def test_aux_logits_match_torchvision(parity: Callable[..., None]) -> None:
    """Strict load, equal eval logits, and equal training outputs under the same dropout draws."""
    ours, theirs = googlenet(aux_logits=True), reference(aux_logits=True)
    parity(ours, theirs, input_size=(32, 32))
    assert count_params(ours) == 13_004_888
    assert {k.split(".")[0] for k in ours.state_dict()} >= {"aux1", "aux2"}
    ours.train()
    theirs.train()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.manual_seed(0)
        out = ours(x)
        torch.manual_seed(0)
        expected = theirs(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert out._fields == ("logits", "aux_logits2", "aux_logits1")
    if TORCHVISION_SWAPS_AUX:
        expected = (expected[0], expected[2], expected[1])
    for got, want in zip(out, expected, strict=True):
        assert got.shape == (2, 1000)
        torch.testing.assert_close(got, want)
    ours.eval()
    with torch.no_grad():
        assert isinstance(ours(x), torch.Tensor)  # evaluation: the main logits only


# Table 1 of Szegedy et al. 2014: in_channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5,
# pool proj, and the table's own "params" column (thousands, no biases).
PAPER_TABLE = {
    "3a": (192, 64, 96, 128, 16, 32, 32, 159),
    "3b": (256, 128, 128, 192, 32, 96, 64, 380),
    "4a": (480, 192, 96, 208, 16, 48, 64, 364),
    "4b": (512, 160, 112, 224, 24, 64, 64, 437),
    "4c": (512, 128, 128, 256, 24, 64, 64, 463),
    "4d": (512, 112, 144, 288, 32, 64, 64, 580),
    "4e": (528, 256, 160, 320, 32, 128, 128, 840),
    "5a": (832, 256, 160, 320, 32, 128, 128, 1072),
    "5b": (832, 384, 192, 384, 48, 128, 128, 1388),
}
PAPER_STEM_AND_LINEAR_K = 2.7 + 112 + 1000  # conv1, conv2 (1x1 + 3x3), linear rows of Table 1


def conv(in_channels: int, out_channels: int, k: int, bias: bool = True) -> int:
    return in_channels * out_channels * k * k + (out_channels if bias else 0)


def paper_params(bias: bool) -> int:
    """Stem (7x7/2 conv 64, 1x1 conv 64, 3x3 conv 192), nine Inception blocks, linear 1024->1000.

    Each Inception block: 1x1; 1x1 reduce + 3x3; 1x1 reduce + 5x5; 1x1 pool projection.
    """
    stem = conv(3, 64, 7, bias) + conv(64, 64, 1, bias) + conv(64, 192, 3, bias)
    blocks = 0
    for c_in, c1, c3r, c3, c5r, c5, pool_proj, _ in PAPER_TABLE.values():
        blocks += conv(c_in, c1, 1, bias) + conv(c_in, pool_proj, 1, bias)
        blocks += conv(c_in, c3r, 1, bias) + conv(c3r, c3, 3, bias)
        blocks += conv(c_in, c5r, 1, bias) + conv(c5r, c5, 5, bias)
    return stem + blocks + 1024 * 1000 + (1000 if bias else 0)


def test_paper_parameter_count_from_inception_table() -> None:
    # 124,416 (stem) + 5,849,136 (Inception blocks) + 1,025,000 (linear)
    assert paper_params(bias=True) == 6_998_552
    assert paper_params(bias=False) == 6_990_272  # 8,280 biases
    assert count_params(googlenet_paper()) == paper_params(bias=True)
    # Table 1's own column is approximate (about 6.8M); our transcription must agree within 5%.
    table_total = 1000 * (PAPER_STEM_AND_LINEAR_K + sum(r[-1] for r in PAPER_TABLE.values()))
    assert abs(paper_params(bias=False) / table_total - 1) < 0.05


def test_paper_layers() -> None:
    model = googlenet_paper()
    kinds = {type(m) for m in model.modules()}
    assert nn.BatchNorm2d not in kinds
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert isinstance(model.norm1, nn.LocalResponseNorm)
    assert isinstance(model.norm2, nn.LocalResponseNorm)
    assert model.inception3a.branch3[1].conv.kernel_size == (5, 5)
    assert model.maxpool4.kernel_size == 3
    assert model.dropout.p == 0.4
    assert isinstance(model.fc, nn.Linear)
    assert (
        model.inception3a.branch3[1].conv.kernel_size
        != googlenet().inception3a.branch3[1].conv.kernel_size
    )


def test_inception_branch3_kernel_is_one_argument() -> None:
    x = torch.randn(2, 192, 9, 9)
    for k in (3, 5):
        block = Inception(192, 64, 96, 128, 16, 32, 32, branch3_kernel_size=k)
        assert block.branch3[1].conv.kernel_size == (k, k)
        assert block(x).shape == (2, 64 + 128 + 32 + 32, 9, 9)
    # the 5x5 path has 16 * 32 * (25 - 9) more weights
    three = count_params(Inception(192, 64, 96, 128, 16, 32, 32, branch3_kernel_size=3))
    five = count_params(Inception(192, 64, 96, 128, 16, 32, 32, branch3_kernel_size=5))
    assert five - three == 16 * 32 * 16


@pytest.mark.parametrize("factory", [googlenet, googlenet_paper])
@pytest.mark.parametrize(("in_channels", "size"), [(1, 28), (3, 32)])
def test_small_input(factory: Callable[..., GoogLeNet], in_channels: int, size: int) -> None:
    model = factory(num_classes=10, in_channels=in_channels, small_input=True, aux_logits=True)
    assert model.conv1.conv.kernel_size == (3, 3) and model.conv1.conv.stride == (1, 1)
    assert isinstance(model.maxpool1, nn.Identity)
    x = torch.randn(2, in_channels, size, size)
    out = model.train()(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert all(t.shape == (2, 10) and torch.isfinite(t).all() for t in out)
    with torch.no_grad():
        y = model.eval()(x)
    assert y.shape == (2, 10)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(
    ("factory", "small_input", "smallest"),
    [
        (googlenet, False, 15),
        (googlenet, True, 4),
        (googlenet_paper, False, 31),
        (googlenet_paper, True, 8),
    ],
)
def test_smallest_input(
    factory: Callable[..., GoogLeNet], small_input: bool, smallest: int
) -> None:
    model = factory(num_classes=10, small_input=small_input).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, smallest, smallest)).shape == (1, 10)
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 3, smallest - 1, smallest - 1))
