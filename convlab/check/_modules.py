"""Walking modules without calling their (overridable) methods: layers, parameters, buffers.

Everything here reads ``_modules``, ``_parameters`` and ``_buffers`` directly (through
``object.__getattribute__``), so a student's module that overrides ``named_modules``,
``parameters`` or ``__getattr__`` cannot change what the checks see.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from convlab.check._messages import CheckError, _layer
from convlab.check._originals import (
    _CPU,
    _deepcopy,
    _dict_items,
    _get_attribute,
    _id,
    _isinstance,
    _issubclass,
    _Module,
    _set,
    _set_attribute,
    _t_device,
    _Tensor,
    _type,
    _Uninitialized,
    _zip,
)

__all__: list[str] = []  # private to convlab.check


def _is_module(obj: object) -> bool:
    return _issubclass(_type(obj), _Module)


def _walk(root: nn.Module) -> list[tuple[str, nn.Module]]:
    """``named_modules`` in registration order, read from ``_modules`` directly."""
    seen: set[int] = _set()
    found: list[tuple[str, nn.Module]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        if _id(module) in seen:
            return
        seen.add(_id(module))
        found.append((prefix, module))
        for name, child in _dict_items(_get_attribute(module, "_modules")):
            if child is not None and _is_module(child):
                visit(f"{prefix}.{name}" if prefix else name, child)

    visit("", root)
    return found


@dataclass(frozen=True)
class _Entry:
    """One parameter or buffer: its dotted name, the tensor, and the module that owns it."""

    name: str
    tensor: Tensor
    owner: str


def _entries(root: nn.Module, kind: str) -> list[_Entry]:
    """Parameters (``kind="_parameters"``) or persistent buffers, each tensor once, in order."""
    seen: set[int] = _set()
    found: list[_Entry] = []
    for prefix, module in _walk(root):
        skip = _get_attribute(module, "_non_persistent_buffers_set") if kind == "_buffers" else ()
        for name, tensor in _dict_items(_get_attribute(module, kind)):
            if tensor is None or name in skip or _id(tensor) in seen:
                continue
            if _isinstance(tensor, _Uninitialized):
                raise CheckError(
                    f"Your {_layer(prefix)} ({_type(module).__name__}) is a lazy layer: its "
                    "weights exist only after a first forward pass, so they can neither be "
                    "counted nor loaded. Give it its input channels or features "
                    "(nn.Conv2d(in_channels, ...), nn.Linear(in_features, ...))."
                )
            seen.add(_id(tensor))
            found.append(_Entry(f"{prefix}.{name}" if prefix else name, tensor, prefix))
    return found


def _set_training(root: nn.Module, mode: bool) -> None:
    for _, module in _walk(root):
        _set_attribute(module, "training", mode)


@contextmanager
def _training_mode(root: nn.Module, mode: bool) -> Iterator[None]:
    modules = [module for _, module in _walk(root)]
    before = [_get_attribute(module, "training") for module in modules]
    _set_training(root, mode)
    try:
        yield
    finally:
        for module, flag in _zip(modules, before):
            _set_attribute(module, "training", flag)


def _clear_hooks(root: nn.Module) -> None:
    """Drop instance hooks from a private copy of the reference."""
    for _, module in _walk(root):
        for attribute in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
            "_state_dict_hooks",
            "_load_state_dict_pre_hooks",
        ):
            hooks = _get_attribute(module, "__dict__").get(attribute)
            if hooks is not None:
                hooks.clear()


def _private_copy(obj: Any) -> Any:
    """A deep copy, or the object itself when it cannot be copied (its weights get overwritten)."""
    try:
        return _deepcopy(obj)
    except Exception:
        return obj


def _device_of(obj: Any, specs: list[object]) -> torch.device:
    if _is_module(obj):
        for kind in ("_parameters", "_buffers"):
            for entry in _entries(obj, kind):
                return _t_device(entry.tensor)
    for spec in specs:
        if _isinstance(spec, _Tensor):
            return _t_device(spec)
    return _CPU
