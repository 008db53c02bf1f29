"""Choosing where tensors live: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["default_device", "keep_cuda_calls_on_cpu"]


def default_device() -> torch.device:
    """The fastest device available: CUDA, then Apple MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def keep_cuda_calls_on_cpu() -> None:
    """Make ``.cuda()`` leave modules and tensors where they are (for grading without a GPU).

    A student who wrote ``model.cuda()`` on Colab would otherwise lose every point that depends
    on that line when the notebook is graded on a machine without a GPU. convlab.labs calls this
    only while nbgrader grades a notebook on such a machine.
    """

    def module_cuda(self: nn.Module, device: object = None) -> nn.Module:
        return self

    def tensor_cuda(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return self

    nn.Module.cuda = module_cuda  # type: ignore[method-assign]
    torch.Tensor.cuda = tensor_cuda  # type: ignore[method-assign]
