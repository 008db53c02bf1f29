"""Shared test helpers: torchvision parity and small deterministic inputs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

torch.set_num_threads(max(1, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _training_allowed_again():
    """A test that graded something (convlab.labs switches fit to loading only) leaves fit able
    to train for the next test in the same process."""
    yield
    from convlab import train

    train.only_load_checkpoints(False)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randomize_norm_stats(model: nn.Module, seed: int = 0) -> None:
    """Give every batch-norm layer non-trivial running statistics and affine parameters.

    Freshly built networks have mean 0, variance 1, gamma 1, beta 0: batch norm in evaluation is
    then almost the identity and would hide a wrong ``eps`` or a misplaced norm layer.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def calibrate_norm_stats(model: nn.Module, x: Tensor, seed: int = 0) -> None:
    """Random gamma and beta, then running statistics measured on ``x`` (one training pass).

    Arbitrary statistics are not enough for deep mobile networks: torchvision's initialization
    shrinks the signal at every depthwise convolution, and with made-up statistics the output
    barely depends on the input, so a missing shortcut would go unnoticed. Statistics measured
    on real activations keep the signal alive up to the classifier.
    """
    randomize_norm_stats(model, seed)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    with torch.no_grad():
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, that batch's statistics
        model.train()
        model(x)
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
    model.eval()


def assert_parity(
    ours: nn.Module,
    reference: nn.Module,
    input_size: tuple[int, int] = (64, 64),
    batch: int = 2,
    in_channels: int = 3,
) -> None:
    """Equal parameter count, strict state-dict load, equal eval-mode outputs.

    The outputs are compared with batch-norm statistics calibrated on the input, and must depend
    on the input (a flipped image gives a different output), so that the comparison has teeth.
    """
    assert count_params(ours) == count_params(reference), (
        f"parameter count {count_params(ours):,} != reference {count_params(reference):,}"
    )
    x = torch.randn(batch, in_channels, *input_size, generator=torch.Generator().manual_seed(1))
    calibrate_norm_stats(reference, x)
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    reference.eval()
    with torch.no_grad():
        out = ours(x)
        torch.testing.assert_close(out, reference(x))
        flipped = ours(x.flip(-1))
    assert (out - flipped).abs().max() > 1e-3 * out.abs().max(), "output ignores the input"


@pytest.fixture
def parity() -> Callable[..., None]:
    return assert_parity
