"""CIFAR ResNets (He et al. 2015, Sec. 4.2) and pre-activation ResNets (He et al. 2016)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable

import pytest
import torch
from torch import nn

from convlab.models import resnet_cifar as rc
from convlab.models.resnet import BasicBlock
from convlab.models.resnet_cifar import (
    CIFAR_PARAMS,
    ORDERS,
    PlainBlock,
    PreActBlock,
    PreActBottleneck,
    ResidualUnit,
    ZeroPadShortcut,
)
from tests.conftest import count_params

CIFAR_DEPTHS = {20: "0.27", 32: "0.46", 44: "0.66", 56: "0.85", 110: "1.7", 1202: "19.4"}


def conv(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out


def bn(c: int) -> int:
    return 2 * c  # gamma and beta


def cifar_params(n: int, shortcut: str = "A", num_classes: int = 10) -> int:
    """Layer arithmetic for the 2015 CIFAR ResNet (plain nets: same as option A)."""
    total = conv(3, 3, 16) + bn(16)
    c_in = 16
    for c in (16, 32, 64):
        total += conv(3, c_in, c) + bn(c) + conv(3, c, c) + bn(c)  # first block
        if shortcut == "B" and c_in != c:
            total += conv(1, c_in, c) + bn(c)
        total += (n - 1) * (2 * conv(3, c, c) + 2 * bn(c))
        c_in = c
    return total + 64 * num_classes + num_classes


def preact_params(n: int, bottleneck: bool, num_classes: int = 10) -> tuple[int, int]:
    """(total, batch-norm part) for order (e) with option B projections (no BN after them)."""
    total, norms = conv(3, 3, 16), 0
    c_in = 16
    for width in (16, 32, 64):
        c_out = 4 * width if bottleneck else width
        for unit in range(n):
            if bottleneck:
                norms += bn(c_in) + 2 * bn(width)
                total += conv(1, c_in, width) + conv(3, width, width) + conv(1, width, c_out)
            else:
                norms += bn(c_in) + bn(c_out)
                total += conv(3, c_in, c_out) + conv(3, c_out, c_out)
            if unit == 0 and c_in != c_out:
                total += conv(1, c_in, c_out)
            c_in = c_out
    norms += bn(c_in)  # final BN before pooling
    return total + norms + c_in * num_classes + num_classes, norms


# --- 2015: CIFAR ResNets and plain nets ----------------------------------------------------------


def test_resnet20_has_the_papers_027m() -> None:
    model = rc.resnet20()
    assert count_params(model) == cifar_params(3) == CIFAR_PARAMS["resnet20"]
    assert f"{count_params(model) / 1e6:.2f}" == "0.27"
    assert count_params(rc.plain20()) == count_params(model)  # option A adds no parameters


@pytest.mark.parametrize("depth", list(CIFAR_DEPTHS))
def test_cifar_param_counts(depth: int) -> None:
    n = (depth - 2) // 6
    count = count_params(getattr(rc, f"resnet{depth}")())
    assert count == cifar_params(n) == CIFAR_PARAMS[f"resnet{depth}"]
    paper = CIFAR_DEPTHS[depth]
    decimals = len(paper.split(".")[1])
    assert f"{count / 1e6:.{decimals}f}" == paper
    if depth <= 56:
        assert count_params(rc.cifar_resnet(depth, shortcut="B")) == cifar_params(n, "B")


CIFAR_FACTORIES = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]
CIFAR_FACTORIES += ["plain20", "plain32", "plain44", "plain56", "plain110"]
CIFAR_FACTORIES += ["preact_resnet110", "preact_resnet164"]


@pytest.mark.parametrize("name", CIFAR_FACTORIES)
@pytest.mark.parametrize(("in_channels", "side"), [(1, 28), (3, 32)])
def test_cifar_forward(name: str, in_channels: int, side: int) -> None:
    model = getattr(rc, name)(num_classes=10, in_channels=in_channels)
    with torch.no_grad():
        y = model.train()(torch.randn(2, in_channels, side, side))
    assert y.shape == (2, 10)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("factory", [rc.resnet1202, rc.preact_resnet1001])
def test_very_deep_forward(factory: Callable[..., nn.Module]) -> None:
    # train mode: freshly built, eval-mode batch norm is nearly the identity and the 600 blocks
    # of ResNet-1202 grow the activations geometrically until they overflow
    model = factory(num_classes=7).train()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 8, 8))
    assert y.shape == (2, 7) and torch.isfinite(y).all()


def test_stage_shapes() -> None:
    model = rc.resnet20()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        x = model.relu(model.bn1(model.conv1(x)))
        shapes = []
        for layer in (model.layer1, model.layer2, model.layer3):
            x = layer(x)
            shapes.append(tuple(x.shape[1:]))
    assert shapes == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]


@pytest.mark.parametrize("side", [1, 5, 9])
def test_tiny_inputs_run(side: int) -> None:
    for model in (rc.resnet20(), rc.preact_resnet(29)):
        with torch.no_grad():
            y = model.train()(torch.randn(2, 3, side, side))
        assert y.shape == (2, 10) and torch.isfinite(y).all()


def test_zero_pad_shortcut_is_option_a() -> None:
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    x = torch.randn(2, 16, 9, 9)
    y = shortcut(x)
    assert y.shape == (2, 32, 5, 5)
    torch.testing.assert_close(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0
    assert count_params(shortcut) == 0
    first = rc.resnet20().layer2[0]
    assert isinstance(first.downsample, ZeroPadShortcut)
    assert isinstance(rc.resnet20(shortcut="B").layer2[0].downsample[0], nn.Conv2d)


def test_plain_block_is_a_basic_block_without_the_shortcut() -> None:
    torch.manual_seed(0)
    plain, residual = PlainBlock(16, 16), BasicBlock(16, 16)
    residual.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), torch.relu(residual.residual(x)))
        torch.testing.assert_close(residual(x), torch.relu(residual.residual(x) + x))
        assert not torch.allclose(plain(x), residual(x))
    net = rc.plain56()
    assert net.layer2[0].downsample is None
    assert all(type(b) is PlainBlock for b in net.modules() if isinstance(b, BasicBlock))


@pytest.mark.parametrize(
    ("depth", "bottleneck"), [(21, False), (0, False), (21, True), (1000, True)]
)
def test_depth_is_validated(depth: int, bottleneck: bool) -> None:
    with pytest.raises(ValueError, match=r"[69]n\+2"):
        if bottleneck:
            rc.preact_resnet(depth, bottleneck=True)
        else:
            rc.cifar_resnet(depth)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="shortcut"):
        rc.cifar_resnet(20, shortcut="C")
    with pytest.raises(ValueError, match="full_preactivation"):
        rc.preact_resnet(164, order="f")
    with pytest.raises(TypeError):
        rc.resnet20(small_input=True)


# --- 2016: pre-activation ResNets and the five unit orders ---------------------------------------


def test_preact_164_and_1001_sizes() -> None:
    count164 = count_params(rc.preact_resnet164())
    total, norms = preact_params(18, bottleneck=True)
    assert count164 == total == CIFAR_PARAMS["preact_resnet164"]
    assert f"{count164 / 1e6:.1f}" == f"{(count164 - norms) / 1e6:.1f}" == "1.7"

    count1001 = count_params(rc.preact_resnet1001())
    total, norms = preact_params(111, bottleneck=True)
    assert count1001 == total == CIFAR_PARAMS["preact_resnet1001"]
    # the paper's 10.2M is the count without batch norm's gamma and beta
    assert f"{(count1001 - norms) / 1e6:.1f}" == "10.2"

    total, _ = preact_params(18, bottleneck=False)
    assert count_params(rc.preact_resnet110()) == total


@pytest.mark.parametrize(
    ("name", "key"),
    [("e", "e"), ("Full pre-activation", "e"), ("BN after addition", "b"), ("original", "a")],
)
def test_orders_accept_letters_and_names(name: str, key: str) -> None:
    assert rc.preact_resnet(20, bottleneck=False, order=name).order == key


def _uniform_weights(module: nn.Module) -> None:
    """Every k-th conv gets the same weights in every order; every BN depends only on its size."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.2)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.linspace(0.5, 1.5, c))
                m.bias.copy_(torch.linspace(-0.3, 0.3, c))
                m.running_mean.copy_(torch.linspace(-0.2, 0.2, c))
                m.running_var.copy_(torch.linspace(0.5, 2.0, c))


@pytest.mark.parametrize(("bottleneck", "channels"), [(False, 16), (True, 64)])
def test_five_orders_same_parts_different_functions(bottleneck: bool, channels: int) -> None:
    units = {k: ResidualUnit(channels, channels, order=k, bottleneck=bottleneck) for k in ORDERS}
    parts = {k: Counter(type(m).__name__ for m in u.modules()) for k, u in units.items()}
    kinds = ("Conv2d", "BatchNorm2d", "ReLU")
    assert len({tuple(p[t] for t in kinds) for p in parts.values()}) == 1  # same components
    x = torch.randn(4, channels, 6, 6, generator=torch.Generator().manual_seed(1))
    for train in (True, False):
        outputs = {}
        for key, unit in units.items():
            _uniform_weights(unit)
            with torch.no_grad():
                outputs[key] = unit.train(train)(x)
        for a, b in itertools.combinations(outputs, 2):
            assert not torch.allclose(outputs[a], outputs[b], atol=1e-3), (a, b, train)


def _copy_positionally(target: nn.Module, source: nn.Module) -> None:
    target_state, source_state = target.state_dict(), source.state_dict()
    assert len(target_state) == len(source_state)
    for (key, value), other in zip(target_state.items(), source_state.values(), strict=True):
        assert value.shape == other.shape, key
        value.copy_(other)


@pytest.mark.parametrize(
    ("reference", "order", "bottleneck", "downsample"),
    [
        (lambda d: PreActBlock(16, 16, 1, d), "e", False, None),
        (lambda d: PreActBlock(16, 32, 2, d), "e", False, nn.Conv2d(16, 32, 1, 2, bias=False)),
        (lambda d: PreActBottleneck(64, 64, 1, d), "e", True, None),
        (lambda d: PreActBottleneck(16, 64, 2, d), "e", True, nn.Conv2d(16, 64, 1, 2, bias=False)),
        (lambda d: BasicBlock(16, 32, 2, d), "a", False, ZeroPadShortcut(16, 32, 2)),
        (lambda d: BasicBlock(16, 16, 1, d), "a", False, None),
    ],
)
def test_generic_unit_matches_the_written_out_blocks(
    reference: Callable[[nn.Module | None], nn.Module],
    order: str,
    bottleneck: bool,
    downsample: nn.Module | None,
) -> None:
    ours = reference(downsample)
    generic = ResidualUnit(
        ours.conv1.in_channels,
        ours.conv2.out_channels if not bottleneck else ours.conv3.out_channels,
        ours.conv1.stride[0] * ours.conv2.stride[0],
        downsample,
        order=order,
        bottleneck=bottleneck,
    )
    _uniform_weights(ours)
    _copy_positionally(generic, ours)
    x = torch.randn(4, ours.conv1.in_channels, 8, 8, generator=torch.Generator().manual_seed(2))
    for train in (True, False):
        with torch.no_grad():
            torch.testing.assert_close(generic.train(train)(x), ours.train(train)(x))


def _silence_branches(stage: nn.Sequential) -> None:
    """Make every unit's residual branch output exactly zero (its last weighted layer := 0)."""
    with torch.no_grad():
        for unit in stage:
            assert unit.downsample is None
            if isinstance(unit, ResidualUnit):
                last = [m for m in unit.branch if not isinstance(m, nn.ReLU)][-1]
            else:
                last = [m for m in unit.modules() if isinstance(m, nn.Conv2d)][-1]
            for p in last.parameters():
                p.zero_()


@pytest.mark.parametrize(
    ("make", "stage"),
    [
        (lambda order: rc.preact_resnet(20, bottleneck=False, order=order), slice(0, None)),
        (lambda order: rc.preact_resnet(29, bottleneck=True, order=order), slice(1, None)),
    ],
)
def test_full_preactivation_shortcut_path_is_a_pure_identity(
    make: Callable[[str], nn.Module], stage: slice
) -> None:
    for order in ORDERS:
        model = make(order)
        _uniform_weights(model)
        layer = model.layer1[stage]  # stride-1 units with identity shortcuts
        _silence_branches(layer)
        channels = next(m for m in layer.modules() if isinstance(m, nn.Conv2d)).in_channels
        x = torch.randn(2, channels, 8, 8, generator=torch.Generator().manual_seed(4))
        for train in (True, False):
            with torch.no_grad():
                y = layer.train(train)(x)
            # with the branches silenced a stage is the identity exactly when nothing follows
            # the addition: orders c, d and e (e being the one that also trains best); the
            # ReLU of (a) and the BN-ReLU of (b) sit on the shortcut path
            assert torch.equal(y, x) == (order in "cde"), (order, train)


def test_preactivation_network_layout() -> None:
    e, a = rc.preact_resnet164(), rc.preact_resnet164(order="a")
    assert len(e.stem_act) == 0 and [type(m) for m in e.final_act] == [nn.BatchNorm2d, nn.ReLU]
    assert [type(m) for m in a.stem_act] == [nn.BatchNorm2d, nn.ReLU] and len(a.final_act) == 0
    assert type(e.layer2[3]) is PreActBottleneck and type(a.layer2[3]) is ResidualUnit
    assert e.fc.in_features == 256
    # order (e): a projection reads normalized input, so it has no BN of its own
    assert [type(m) for m in e.layer2[0].downsample] == [nn.Conv2d]
    assert [type(m) for m in a.layer2[0].downsample] == [nn.Conv2d, nn.BatchNorm2d]


@pytest.mark.parametrize("order", list(ORDERS))
@pytest.mark.parametrize("bottleneck", [False, True])
def test_every_order_builds_a_working_network(order: str, bottleneck: bool) -> None:
    model = rc.preact_resnet(20 if not bottleneck else 29, order=order, bottleneck=bottleneck)
    y = model.train()(torch.randn(2, 3, 16, 16))
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    y.sum().backward()
    assert model.conv1.weight.grad is not None and torch.isfinite(model.conv1.weight.grad).all()
