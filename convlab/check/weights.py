"""Weights: :func:`transfer_weights`, and the private copies the comparisons run on.

The reference is deep-copied and every floating-point tensor of it that is constant (as batch
norm's ``gamma = 1``, ``beta = 0``, running mean 0 and variance 1, and zero biases are) is
replaced by seeded random values, so that a misplaced or missing normalization cannot hide behind
an identity. Its parameters and persistent floating-point buffers are then copied into a deep copy
of the student's module (:func:`transfer_weights`): by shape in registration order
(``match="order"``, the default: define the layers in the reference's order; integer buffers such
as ``num_batches_tracked`` are paired only when both sides have the same number), or by state-dict
name (``match="name"``, for labs that prescribe attribute names). The caller's modules are left
as they were (a student's module that cannot be deep-copied is used, and changed, as it is).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from convlab.check._messages import CheckError, _describe, _fmt_shape
from convlab.check._modules import _clear_hooks, _entries, _Entry, _is_module, _private_copy
from convlab.check._originals import (
    _deepcopy,
    _dict_items,
    _DisableTorchFunctionSubclass,
    _enumerate,
    _float,
    _float64,
    _Generator,
    _len,
    _list,
    _max,
    _min,
    _module_to,
    _no_grad,
    _rand,
    _randn,
    _t_add,
    _t_copy_,
    _t_is_floating_point,
    _t_item,
    _t_max,
    _t_min,
    _t_mul,
    _t_numel,
    _t_shape,
    _tuple,
    _zip,
)

__all__ = ["transfer_weights"]


def _listing(entries: list[_Entry], around: int, limit: int = 6) -> str:
    start = _max(0, around - 2)
    rows = [
        f"      {i}. {entry.name} {_fmt_shape(_t_shape(entry.tensor))}"
        for i, entry in _enumerate(entries[start : start + limit], start=start + 1)
    ]
    return "\n".join(rows) if rows else "      (none)"


def _pair_by_order(
    student: list[_Entry], reference: list[_Entry], what: str
) -> list[tuple[_Entry, _Entry]]:
    for i, (mine, theirs) in _enumerate(_zip(student, reference)):
        if _tuple(_t_shape(mine.tensor)) != _tuple(_t_shape(theirs.tensor)):
            raise CheckError(
                f"Cannot load the reference's weights: {what} number {i + 1} differs in shape. "
                f"Yours is `{mine.name}` {_fmt_shape(_t_shape(mine.tensor))}, the reference's is "
                f"`{theirs.name}` {_fmt_shape(_t_shape(theirs.tensor))}.\n"
                f"    Yours, around it:\n{_listing(student, i)}\n"
                f"    Reference, around it:\n{_listing(reference, i)}\n"
                f"  Weights are matched by shape in the order the layers are created in __init__: "
                "check that layer's channels, kernel size and groups, and define your layers in "
                "the reference's order."
            )
    if _len(student) != _len(reference):
        n = _min(_len(student), _len(reference))
        extra, side = (
            (student, "yours")
            if _len(student) > _len(reference)
            else (reference, "the reference's")
        )
        raise CheckError(
            f"Cannot load the reference's weights: your module has {_len(student)} {what}s, the "
            f"reference has {_len(reference)}. The first {n} match in shape; the first unmatched "
            f"one is {side} `{extra[n].name}` {_fmt_shape(_t_shape(extra[n].tensor))}.\n"
            f"    Yours, at the end:\n{_listing(student, n)}\n"
            f"    Reference, at the end:\n{_listing(reference, n)}\n"
            "  A layer is missing or extra (or a convolution has a bias the reference does not "
            "have: use bias=False before batch norm)."
        )
    return _list(_zip(student, reference))


def _pair_by_name(
    student: list[_Entry], reference: list[_Entry], what: str
) -> list[tuple[_Entry, _Entry]]:
    mine = {entry.name: entry for entry in student}
    theirs = {entry.name: entry for entry in reference}
    missing = [name for name in theirs if name not in mine]
    unexpected = [name for name in mine if name not in theirs]
    if missing or unexpected:
        raise CheckError(
            f"Cannot load the reference's weights by name: {what}s missing from your module: "
            f"{', '.join(missing[:8]) or 'none'}; {what}s the reference does not have: "
            f"{', '.join(unexpected[:8]) or 'none'}. Use the attribute names the lab prescribes."
        )
    pairs = []
    for name, entry in _dict_items(theirs):
        if _tuple(_t_shape(mine[name].tensor)) != _tuple(_t_shape(entry.tensor)):
            raise CheckError(
                f"Cannot load the reference's weights: your {what} `{name}` has shape "
                f"{_fmt_shape(_t_shape(mine[name].tensor))}, the reference's "
                f"{_fmt_shape(_t_shape(entry.tensor))}."
            )
        pairs.append((mine[name], entry))
    return pairs


def _pairs(reference: nn.Module, student: nn.Module, match: str) -> list[tuple[_Entry, _Entry]]:
    if match not in ("order", "name"):
        raise ValueError(f"match must be 'order' or 'name', got {match!r}")
    pair = _pair_by_order if match == "order" else _pair_by_name
    pairs = pair(_entries(student, "_parameters"), _entries(reference, "_parameters"), "parameter")
    buffers = [_entries(student, "_buffers"), _entries(reference, "_buffers")]
    floating = [[e for e in entries if _t_is_floating_point(e.tensor)] for entries in buffers]
    integer = [[e for e in entries if not _t_is_floating_point(e.tensor)] for entries in buffers]
    pairs += pair(floating[0], floating[1], "floating-point buffer")
    try:
        pairs += pair(integer[0], integer[1], "integer buffer")
    except CheckError:
        pass  # counters such as num_batches_tracked are optional
    return pairs


def transfer_weights(
    reference: nn.Module, student: nn.Module, *, match: str = "order"
) -> list[tuple[str, str]]:
    """Copy the reference's parameters and persistent buffers into the student's module.

    With ``match="order"`` parameters are paired in registration order (the order of
    ``named_parameters()``, that is, the order layers are assigned in ``__init__``) and must agree
    in shape pair by pair; floating-point buffers (running statistics) likewise; integer buffers
    (``num_batches_tracked``) are paired when both sides have the same number. With
    ``match="name"`` every state-dict name must exist on both sides with the same shape.

    Args:
        reference: the module whose values are copied.
        student: the module that receives them (modified in place).
        match: ``"order"`` or ``"name"``.

    Returns:
        ``(student name, reference name)`` of every copied tensor, parameters first.

    Raises:
        CheckError: naming the first pair that differs in shape (student name and shape, reference
            name and shape, with the neighbouring entries of both), or explaining a count mismatch.
    """
    for obj, who in ((reference, "reference"), (student, "student's answer")):
        if not _is_module(obj):
            raise CheckError(
                f"The {who} must be an nn.Module to load weights, got {_describe(obj)}."
            )
    pairs = _pairs(reference, student, match)
    with _no_grad(), _DisableTorchFunctionSubclass():
        for mine, theirs in pairs:
            _t_copy_(mine.tensor, theirs.tensor)
    return [(mine.name, theirs.name) for mine, theirs in pairs]


def _randomize(module: nn.Module, seed: int) -> None:
    """Replace every constant floating-point tensor by seeded random values of similar size.

    Positive constants ``c`` (batch-norm scale and running variance) become ``c * U(0.5, 1.5)``;
    zeros (shifts, running means, biases) become ``N(0, 0.1^2)``.
    """
    generator = _Generator().manual_seed(seed + 7919)
    with _no_grad(), _DisableTorchFunctionSubclass():
        for kind in ("_parameters", "_buffers"):
            for entry in _entries(module, kind):
                tensor = entry.tensor
                if not _t_is_floating_point(tensor) or _t_numel(tensor) == 0:
                    continue
                low = _float(_t_item(_t_min(tensor)))
                high = _float(_t_item(_t_max(tensor)))
                if low != high:
                    continue
                shape = _tuple(_t_shape(tensor))
                if low > 0:
                    values = _t_mul(
                        _t_add(_rand(shape, generator=generator, dtype=_float64), 0.5), low
                    )
                elif low == 0:
                    values = _t_mul(_randn(shape, generator=generator, dtype=_float64), 0.1)
                else:
                    continue
                _t_copy_(tensor, values)


def _prepare(
    student: Any,
    reference: Any,
    specs: list[object],
    *,
    seed: int,
    device: torch.device,
    dtype: torch.dtype | None,
    match: str,
) -> tuple[Any, Any, list[tuple[_Entry, _Entry]]]:
    """Private copies of both, on ``device`` (and ``dtype``), with the reference's weights."""
    if _is_module(reference) and not _is_module(student):
        raise CheckError(
            f"Expected an nn.Module (like the reference {_describe(reference)}), got "
            f"{_describe(student)}."
        )
    reference = _deepcopy(reference)
    student = _private_copy(student)
    pairs: list[tuple[_Entry, _Entry]] = []
    if dtype is not None and _is_module(student):
        _module_to(student, device=device, dtype=dtype)
    if _is_module(reference):
        _clear_hooks(reference)
        _module_to(reference, device=device, dtype=dtype)
        _randomize(reference, seed)
        pairs = _pairs(reference, student, match)
        with _no_grad(), _DisableTorchFunctionSubclass():
            for mine, theirs in pairs:
                _t_copy_(mine.tensor, theirs.tensor)
    return student, reference, pairs
