"""Output shape: :func:`check_output_shape`, with a hint for the dimension that differs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

from torch import nn

from convlab.check._guard import _verify_environment
from convlab.check._messages import CheckError, _fmt_shape
from convlab.check._modules import _device_of, _is_module, _private_copy, _training_mode, _walk
from convlab.check._originals import (
    _float32,
    _get_attribute,
    _int,
    _isinstance,
    _len,
    _no_grad,
    _range,
    _register_forward_hook,
    _t_shape,
    _Tensor,
    _tuple,
    _type,
)
from convlab.check._tensors import Inputs, _args_text, _genuine, _input_specs, _make_args
from convlab.check._trace import _run_traced

__all__ = ["check_output_shape"]


def _shape_hint(got: tuple[int, ...], expected: tuple[int, ...]) -> str:
    if _len(got) != _len(expected):
        return (
            f"Your output has {_len(got)} dimensions instead of {_len(expected)}: check flatten, "
            "view, squeeze and unsqueeze."
        )
    hints = []
    if got and got[0] != expected[0]:
        hints.append(
            f"The batch dimension changed ({got[0]} instead of {expected[0]}): reshape with "
            "x.flatten(1) or x.view(x.size(0), -1), never across the batch."
        )
    if _len(got) > 1 and got[1] != expected[1]:
        hints.append(
            f"Dimension 1 (channels) is {got[1]} instead of {expected[1]}: check out_channels of "
            "the last layers, and whether branches or features are concatenated "
            "(torch.cat(..., dim=1) adds up channels) or added (+ keeps them)."
        )
    names = {2: "height", 3: "width"}
    for dim in _range(2, _len(got)):
        g, e = got[dim], expected[dim]
        if g == e:
            continue
        label = f"Dimension {dim} ({names.get(dim, 'spatial')}) is {g} instead of {e}: "
        if g < e and g * 2 > e:
            hints.append(
                label + f"{e - g} too small. A k x k convolution without padding loses k - 1 rows "
                "and columns; padding=(k - 1) // 2 keeps the size (padding=1 for 3x3)."
            )
        elif g < e:
            hints.append(
                label + "too small: an extra stride 2 or pooling layer, or a stride too large?"
            )
        elif g >= 2 * e - 1:
            hints.append(label + "too large: a stride-2 convolution or a pooling layer is missing?")
        else:
            hints.append(label + f"{g - e} too large: too much padding?")
        break
    return " ".join(hints)


def _trace_hooks(root: nn.Module, trace: list[str]) -> list[Any]:
    """Hooks that note each leaf layer's output shape, in the order the layers run."""
    handles = []
    for path, module in _walk(root):
        if _len(_get_attribute(module, "_modules")):
            continue  # leaves only: a container's output is its last leaf's

        def hook(module: nn.Module, args: Any, output: Any, path: str = path) -> None:
            shape = (
                _fmt_shape(_t_shape(output))
                if _isinstance(output, _Tensor)
                else _type(output).__name__
            )
            trace.append(f"    {path or '(top level)'} ({_type(module).__name__}) -> {shape}")

        handles.append(_register_forward_hook(module, hook))
    return handles


def _trace_text(trace: list[str], limit: int = 30) -> str:
    if not trace:
        return ""
    lines = trace[:limit] + ([f"    ... {_len(trace) - limit} more"] if _len(trace) > limit else [])
    return "\n  Output shapes of your layers, in the order they ran:\n" + "\n".join(lines)


def check_output_shape(
    module: Callable[..., Any],
    input_shape: Inputs,
    expected_shape: Sequence[int],
    *,
    train: bool = False,
    seed: int = 0,
) -> None:
    """Check the shape of ``module``'s output for a seeded input of ``input_shape``.

    A copy of the module runs in evaluation mode (``train=False``, so a batch of one works with
    batch norm) without gradients.

    Args:
        module: the student's module (or function).
        input_shape: shape of the input, or inputs as described in the package docstring.
        expected_shape: the expected output shape.
        train: run in training mode instead.
        seed: seed of the input.

    Raises:
        CheckError: naming the dimension that differs, the output shape of every layer of the
            student's module in the order they ran, and a hint (padding, stride, concatenation).
    """
    _verify_environment()
    specs = _input_specs(input_shape)
    args = _make_args(specs, seed, _device_of(module, specs), _float32, grad=False)
    expected = _tuple(_int(d) for d in expected_shape)
    module = _private_copy(module)
    trace: list[str] = []
    handles = _trace_hooks(module, trace) if _is_module(module) else []
    mode = _training_mode(module, train) if _is_module(module) else nullcontext()
    what = f"Calling your module on {_args_text(args)}"
    try:
        with _no_grad(), mode:
            output = _run_traced(lambda: module(*args.values), None, what)
    except CheckError as error:
        raise CheckError(f"{error}{_trace_text(trace)}") from error
    finally:
        for handle in handles:
            handle.remove()
    _verify_environment()
    tensor = _genuine(output, "Your module's output")
    got = _tuple(_int(d) for d in _t_shape(tensor))
    if got == expected:
        return
    raise CheckError(
        f"For {_args_text(args)} your module's output has shape {_fmt_shape(got)}; expected "
        f"{_fmt_shape(expected)}. {_shape_hint(got, expected)}{_trace_text(trace)}"
    )
