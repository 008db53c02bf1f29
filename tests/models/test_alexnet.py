"""AlexNet: torchvision parity, the 2012 two-GPU network's parameter count and layers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torchvision
from torch import nn

from convlab.models.alexnet import AlexNet, alexnet, alexnet_paper, paper_local_response_norm
from tests.conftest import count_params


def test_alexnet_matches_torchvision(parity: Callable[..., None]) -> None:
    ours = alexnet()
    assert count_params(ours) == 61_100_840
    parity(ours, torchvision.models.alexnet(weights=None), input_size=(64, 64), batch=1)


def test_paper_parameter_count_from_layer_table() -> None:
    """Krizhevsky et al. 2012, Figure 2, with the two GPUs' halves as groups=2.

    A grouped convolution's kernel reads in_channels / groups channels:

        conv1  96 x   3 x 11 x 11 +  96 =     34,944
        conv2 256 x  48 x  5 x  5 + 256 =    307,456   (groups=2: 96 / 2 = 48)
        conv3 384 x 256 x  3 x  3 + 384 =    885,120   (reads both GPUs)
        conv4 384 x 192 x  3 x  3 + 384 =    663,936   (groups=2: 384 / 2)
        conv5 256 x 192 x  3 x  3 + 256 =    442,624   (groups=2)
        fc6   9216 x 4096 + 4096        = 37,752,832   (256 x 6 x 6 = 9216 inputs)
        fc7   4096 x 4096 + 4096        = 16,781,312
        fc8   4096 x 1000 + 1000        =  4,097,000
        total                             60,965,224
    """
    convs = [(3, 96, 11, 1), (96, 256, 5, 2), (256, 384, 3, 1), (384, 384, 3, 2), (384, 256, 3, 2)]
    fcs = [(256 * 6 * 6, 4096), (4096, 4096), (4096, 1000)]
    expected = sum(o * (i // g) * k * k + o for i, o, k, g in convs)
    expected += sum(i * o + o for i, o in fcs)
    assert expected == 60_965_224
    assert count_params(alexnet_paper()) == expected


def test_paper_layers() -> None:
    model = alexnet_paper()
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    kinds = [type(m) for m in model.features]
    # conv-ReLU-LRN-pool twice, then three convs and a pool (Sec. 3.3, 3.4)
    assert kinds[:8] == [nn.Conv2d, nn.ReLU, nn.LocalResponseNorm, nn.MaxPool2d] * 2
    assert sum(k is nn.LocalResponseNorm for k in kinds) == 2
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert all(p.kernel_size == 3 and p.stride == 2 for p in pools)  # overlapping pooling
    # dropout zeroes the outputs of the two hidden layers
    assert [type(m) for m in model.classifier] == [
        nn.Linear,
        nn.ReLU,
        nn.Dropout,
        nn.Linear,
        nn.ReLU,
        nn.Dropout,
        nn.Linear,
    ]
    assert all(m.p == 0.5 for m in model.classifier if isinstance(m, nn.Dropout))
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in alexnet().modules())


def test_paper_native_227_is_exact() -> None:
    """227 px gives Figure 2's 55 -> 27 -> 13 maps and a 6x6 map with no pooling left to do."""
    model = alexnet_paper().eval()
    sizes = []
    x = torch.randn(1, 3, 227, 227)
    with torch.no_grad():
        for m in model.features:
            x = m(x)
            if isinstance(m, nn.Conv2d):
                sizes.append(x.shape[-1])
    assert sizes == [55, 27, 13, 13, 13]
    assert x.shape == (1, 256, 6, 6)


def test_local_response_norm_is_the_papers_formula() -> None:
    """b_i = a_i / (k + alpha * sum_{j=i-2}^{i+2} a_j^2)^beta, no division by n (Sec. 3.3)."""
    # Activations of size ~30 make alpha's term comparable to k, so a wrong alpha shows.
    a = 30 * torch.randn(2, 7, 3, 3, generator=torch.Generator().manual_seed(0))
    k, alpha, beta, n = 2.0, 1e-4, 0.75, 5
    expected = torch.empty_like(a)
    for i in range(a.shape[1]):
        lo, hi = max(0, i - n // 2), min(a.shape[1] - 1, i + n // 2)
        expected[:, i] = a[:, i] / (k + alpha * (a[:, lo : hi + 1] ** 2).sum(1)) ** beta
    assert not torch.allclose(nn.LocalResponseNorm(n, alpha, beta, k)(a), expected)
    torch.testing.assert_close(paper_local_response_norm()(a), expected)


@pytest.mark.parametrize("factory", [alexnet, alexnet_paper])
@pytest.mark.parametrize(("in_channels", "size"), [(1, 28), (3, 32), (3, 15)])
def test_small_input(factory: Callable[..., AlexNet], in_channels: int, size: int) -> None:
    model = factory(num_classes=10, in_channels=in_channels, small_input=True).eval()
    assert model.features[0].kernel_size == (3, 3) and model.features[0].stride == (1, 1)
    with torch.no_grad():
        y = model(torch.randn(2, in_channels, size, size))
    assert y.shape == (2, 10)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(("factory", "smallest"), [(alexnet, 63), (alexnet_paper, 67)])
def test_smallest_native_input(factory: Callable[..., AlexNet], smallest: int) -> None:
    model = factory(num_classes=10, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, smallest, smallest)).shape == (1, 10)
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 1, smallest - 1, smallest - 1))
