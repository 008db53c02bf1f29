"""ImageNet ResNets and ResNeXts: torchvision parity, recorded sizes, options, d2l's blocks."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from convlab.models import resnet
from convlab.models.resnet import RESNET_PARAMS, BasicBlock, Bottleneck, ResNet
from tests.conftest import count_params, randomize_norm_stats

NAMES = list(RESNET_PARAMS)  # one entry per factory
# the deep ones get a 32x32 parity input (layer4 at 1x1) to keep the file fast on 2 cores
PARITY_SIZE = {name: 32 if name in ("resnet152", "resnext101_32x8d") else 64 for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_torchvision_parity_and_recorded_size(name: str, parity: Callable[..., None]) -> None:
    ours = getattr(resnet, name)()
    torch.manual_seed(0)
    reference = getattr(tvm, name)(weights=None)
    assert count_params(ours) == count_params(reference) == RESNET_PARAMS[name]
    size = PARITY_SIZE[name]
    parity(ours, reference, input_size=(size, size), batch=2)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("in_channels", "side"), [(1, 28), (3, 32)])
def test_small_input(name: str, in_channels: int, side: int) -> None:
    model = getattr(resnet, name)(num_classes=10, in_channels=in_channels, small_input=True)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    model.eval()
    with torch.no_grad():
        y = model(torch.randn(1, in_channels, side, side))
    assert y.shape == (1, 10)
    assert torch.isfinite(y).all()


def test_small_input_keeps_resolution() -> None:
    x = torch.randn(2, 3, 32, 32)
    native, small = resnet.resnet18(), resnet.resnet18(small_input=True)
    with torch.no_grad():
        assert native.forward_features(x).shape == (2, 512, 1, 1)
        assert small.forward_features(x).shape == (2, 512, 4, 4)
    # only the stem's first convolution changes size: 3x3x3x64 instead of 7x7x3x64
    assert count_params(native) - count_params(small) == (49 - 9) * 3 * 64


@pytest.mark.parametrize("side", [1, 7])
def test_tiny_inputs_run(side: int) -> None:
    for model in (resnet.resnet18(), resnet.resnet18(small_input=True, in_channels=1)):
        with torch.no_grad():
            y = model.train()(torch.randn(2, model.conv1.in_channels, side, side))
        assert y.shape == (2, 1000) and torch.isfinite(y).all()


def test_stride_in_1x1_is_the_papers_bottleneck() -> None:
    v15, paper = resnet.resnet50(), resnet.resnet50(stride_in_1x1=True)
    first = paper.layer2[0]
    assert first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    # same parameters and keys, different computation
    paper.load_state_dict(v15.state_dict(), strict=True)
    randomize_norm_stats(v15)
    paper.load_state_dict(v15.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = v15.eval()(x), paper.eval()(x)
    assert a.shape == b.shape == (1, 1000)
    assert not torch.allclose(a, b)


def test_zero_init_residual_makes_every_block_its_shortcut() -> None:
    for factory, last_bn in ((resnet.resnet18, "bn2"), (resnet.resnet50, "bn3")):
        model = factory(zero_init_residual=True)
        blocks = [m for m in model.modules() if isinstance(m, BasicBlock | Bottleneck)]
        assert all(torch.count_nonzero(getattr(b, last_bn).weight) == 0 for b in blocks)
        block = model.layer1[1]  # identity shortcut
        x = torch.randn(2, block.conv1.in_channels, 8, 8)
        with torch.no_grad():
            torch.testing.assert_close(block(x), torch.relu(x))


def test_resnext_is_a_grouped_bottleneck() -> None:
    model = resnet.resnext50_32x4d()
    conv = model.layer1[0].conv2
    assert type(model.layer1[0]) is Bottleneck
    assert (conv.groups, conv.in_channels, conv.out_channels) == (32, 128, 128)
    assert model.layer4[0].conv2.in_channels == 1024  # 32 paths x 4 channels x 8
    assert model.fc.in_features == 2048


def test_basic_block_refuses_resnext_arguments() -> None:
    with pytest.raises(ValueError, match="Bottleneck only"):
        ResNet(BasicBlock, resnet.RESNET_STAGES[18], groups=32, width_per_group=4)


# d2l cross-check. d2l's blocks are lazy, their convolutions carry biases, and their names differ:
# d2l.Residual's projection is ``conv3``, d2l.ResNeXtBlock's is ``conv4`` + ``bn4``.


@pytest.fixture(scope="module")
def d2l() -> ModuleType:
    return pytest.importorskip("d2l.torch")


def _materialize(theirs: nn.Module, in_channels: int) -> None:
    """Run the lazy block once, zero its convolution biases, randomize its batch norms."""
    theirs(torch.randn(2, in_channels, 8, 8))
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.zero_()
    randomize_norm_stats(theirs, seed=3)


def _renamed_state(
    theirs: nn.Module, ours: nn.Module, rename: dict[str, str]
) -> dict[str, torch.Tensor]:
    """``theirs.state_dict()`` under our names; a bias with no place in ours must be zero."""
    wanted = ours.state_dict()
    state = {}
    for key, value in theirs.state_dict().items():
        prefix, _, rest = key.partition(".")
        new_key = f"{rename.get(prefix, prefix)}.{rest}"
        if new_key in wanted:
            state[new_key] = value
        else:
            assert key.endswith(".bias") and torch.count_nonzero(value) == 0, key
    return state


def _compare(ours: nn.Module, theirs: nn.Module, rename: dict[str, str], in_channels: int) -> None:
    """Same weights in, same outputs and running statistics out, in train then eval mode."""
    ours.load_state_dict(_renamed_state(theirs, ours, rename), strict=True)
    x = torch.randn(4, in_channels, 8, 8, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(ours.train()(x), theirs.train()(x))
    after = ours.state_dict()
    for key, value in _renamed_state(theirs, ours, rename).items():
        torch.testing.assert_close(after[key], value, msg=key)  # running stats moved alike
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x))


@pytest.mark.parametrize(
    ("in_channels", "num_channels", "use_1x1conv", "strides"),
    [(8, 8, False, 1), (8, 16, True, 2), (8, 8, True, 1)],
)
def test_basic_block_matches_d2l_residual(
    d2l: ModuleType, in_channels: int, num_channels: int, use_1x1conv: bool, strides: int
) -> None:
    theirs = d2l.Residual(num_channels, use_1x1conv=use_1x1conv, strides=strides)
    _materialize(theirs, in_channels)
    downsample = None
    if use_1x1conv:
        # d2l's projection is a biased 1x1 convolution without batch norm (torchvision's and
        # ResNet's default has BN): give our block exactly that shortcut, bias included.
        downsample = nn.Conv2d(in_channels, num_channels, 1, stride=strides, bias=True)
        with torch.no_grad():
            theirs.conv3.bias.normal_()
    ours = BasicBlock(in_channels, num_channels, strides, downsample)
    _compare(ours, theirs, {"conv3": "downsample"}, in_channels)


@pytest.mark.parametrize(
    ("in_channels", "num_channels", "d2l_groups", "bot_mul", "use_1x1conv", "strides"),
    [
        (32, 32, 16, 1.0, False, 1),
        (32, 64, 16, 1.0, True, 2),
        (64, 64, 8, 0.5, False, 1),
        (32, 64, 4, 0.25, True, 1),
    ],
)
def test_grouped_bottleneck_matches_d2l_resnext_block(
    d2l: ModuleType,
    in_channels: int,
    num_channels: int,
    d2l_groups: int,
    bot_mul: float,
    use_1x1conv: bool,
    strides: int,
) -> None:
    theirs = d2l.ResNeXtBlock(num_channels, d2l_groups, bot_mul, use_1x1conv, strides)
    _materialize(theirs, in_channels)
    # d2l's ``groups`` is channels per group and its 3x3 width is num_channels * bot_mul. Ours
    # takes the number of groups (cardinality) and a width of
    # out_channels / expansion * width_per_group / 64 * groups: pick the arguments that give
    # the same convolution. The layer order (1x1, grouped 3x3 with the stride, 1x1, projection
    # with BN) is the same as torchvision's v1.5 bottleneck.
    width = round(num_channels * bot_mul)
    cardinality = width // d2l_groups
    width_per_group = d2l_groups * 64 * Bottleneck.expansion // num_channels
    downsample = None
    if use_1x1conv:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, num_channels, 1, stride=strides, bias=False),
            nn.BatchNorm2d(num_channels),
        )
    ours = Bottleneck(in_channels, num_channels, strides, downsample, cardinality, width_per_group)
    assert ours.conv2.weight.shape == theirs.conv2.weight.shape
    assert ours.conv2.groups == theirs.conv2.groups == cardinality
    _compare(ours, theirs, {"conv4": "downsample.0", "bn4": "downsample.1"}, in_channels)
