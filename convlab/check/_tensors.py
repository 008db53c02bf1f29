"""Tensors in and out of the code under test: making seeded inputs, accepting outputs.

Inputs. ``inputs`` is a shape such as ``(2, 64, 8, 8)`` (a seeded standard-normal tensor is made
inside the checker with a private ``torch.Generator``), a tensor (copied), or a list of these and
other plain arguments (``[(8, 4, 5, 5), running_mean, running_var, (4,), (4,), True]`` for a
``batch_norm`` function). Each side gets its own fresh copy, so an in-place operation on an input
cannot leak into the other side.

Outputs. Students' outputs must be exactly ``torch.Tensor`` (subclasses and look-alike objects,
such as one whose ``==`` is always true, are refused) and are copied into fresh float64 CPU
tensors before use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from convlab.check._messages import CheckError, _describe, _fmt_shape
from convlab.check._originals import (
    _CPU,
    _all,
    _DisableTorchFunctionSubclass,
    _enumerate,
    _float32,
    _float64,
    _Generator,
    _int,
    _isinstance,
    _issubclass,
    _len,
    _list,
    _list_getitem,
    _list_len,
    _randn,
    _range,
    _repr,
    _Size,
    _strided,
    _t_clone,
    _t_detach,
    _t_device,
    _t_dtype,
    _t_is_floating_point,
    _t_is_nested,
    _t_layout,
    _t_requires_grad_,
    _t_shape,
    _t_to,
    _Tensor,
    _tuple,
    _tuple_getitem,
    _tuple_len,
    _type,
)

__all__ = ["Inputs"]

Inputs = Any  # a shape, a tensor, or a sequence of shapes, tensors and plain arguments


def _is_shape(value: object) -> bool:
    if _type(value) is _Size:
        return True
    if _type(value) not in (_tuple, _list):
        return False
    return _all(_type(d) is _int and d >= 0 for d in value)


def _input_specs(inputs: Inputs) -> list[object]:
    if _type(inputs) is _Tensor or _is_shape(inputs):
        return [inputs]
    if _type(inputs) in (_tuple, _list):
        return _list(inputs)
    raise TypeError(
        "inputs must be a shape such as (2, 64, 8, 8), a tensor, or a list of shapes, tensors and "
        f"plain arguments; got {_describe(inputs)}"
    )


@dataclass
class _Args:
    """Arguments for one call; ``generated[i]`` is whether argument ``i`` came from a shape."""

    values: list[Any]
    generated: list[bool]


def _make_args(
    specs: list[object], seed: int, device: torch.device, dtype: torch.dtype, grad: bool
) -> _Args:
    """Fresh, seeded arguments: the same values on every call with the same seed."""
    generator = _Generator().manual_seed(seed)
    values: list[Any] = []
    generated: list[bool] = []
    for spec in specs:
        if _is_shape(spec):
            tensor = _randn(_tuple(spec), generator=generator, dtype=_float32)
            tensor = _t_to(tensor, device=device, dtype=dtype)  # float64: the same values
            if grad:
                _t_requires_grad_(tensor, True)
            values.append(tensor)
            generated.append(True)
        elif _isinstance(spec, _Tensor):
            tensor = _t_clone(_t_detach(spec))
            if _t_is_floating_point(tensor) and dtype is _float64:
                tensor = _t_to(tensor, device=device, dtype=_float64)
            else:
                tensor = _t_to(tensor, device=device)
            values.append(tensor)
            generated.append(False)
        else:
            values.append(spec)
            generated.append(False)
    return _Args(values, generated)


def _args_text(args: _Args) -> str:
    parts = []
    for value in args.values:
        if _isinstance(value, _Tensor):
            parts.append(_fmt_shape(_t_shape(value)))
        else:
            parts.append(_repr(value))
    return "input " + parts[0] if _len(parts) == 1 else "inputs " + ", ".join(parts)


def _genuine(value: object, where: str) -> Tensor:
    """``value`` if it is exactly a ``torch.Tensor`` holding numbers; otherwise a CheckError."""
    kind = _type(value)
    if kind is not _Tensor:
        if _isinstance(value, _Tensor):
            raise CheckError(
                f"{where} is a {_describe(value)}, a subclass of torch.Tensor. Tensor subclasses "
                "can change how tensors compare and compute, so the checks accept only plain "
                "torch.Tensor results: return the tensor your layers compute."
            )
        raise CheckError(
            f"{where} is a {_describe(value)}, not a torch.Tensor. Return the tensor your layers "
            "compute (objects that only pretend to be tensors, for example through __eq__ or "
            "__torch_function__, are refused)."
        )
    if _t_is_nested(value) or _t_layout(value) is not _strided:
        raise CheckError(f"{where} is a nested or sparse tensor; return an ordinary dense tensor.")
    if _t_device(value).type == "meta":
        raise CheckError(f"{where} is a meta tensor, which has no values.")
    if not _t_is_floating_point(value):
        raise CheckError(
            f"{where} has dtype {_t_dtype(value)}; a floating-point tensor was expected."
        )
    return value


def _fresh(tensor: Tensor) -> Tensor:
    """A new float64 CPU tensor with the same values, detached from everything."""
    with _DisableTorchFunctionSubclass():
        return _t_to(_t_detach(tensor), device=_CPU, dtype=_float64, copy=True)


def _outputs(value: object, where: str) -> list[Tensor | None]:
    """The tensors of a result: one tensor, or a tuple or list of tensors (or ``None``)."""
    if _issubclass(_type(value), _tuple):
        items = [_tuple_getitem(value, i) for i in _range(_tuple_len(value))]
    elif _type(value) is _list:
        items = [_list_getitem(value, i) for i in _range(_list_len(value))]
    else:
        return [_genuine(value, where)]
    return [
        None if item is None else _genuine(item, f"{where}[{i}]") for i, item in _enumerate(items)
    ]
