"""The tamper guard: what the reference computes with, as it was when convlab.check was imported.

Each check first verifies that the functions the *reference* computes with (``torch``,
``torch.nn.functional``, every ``torch.nn`` layer class, every convlab class and function, every
module of convlab.check) are the ones seen at import (or were rebound by the library's own code,
as ``torch.compile`` and ``importlib.reload`` do), that no torch function or dispatch mode and no
global module hook is active, and that the reference registry lost no entry, and refuses to
grade otherwise. The snapshot is taken while convlab.check is imported, before any student code
can run: the names of torch and of the convlab modules imported by then, here, when this module
is imported, and the globals of every module of convlab.check by :func:`_capture_package`, which
the package calls once all its modules are imported.

Code that runs in the same Python process can in the end rewrite anything, this package
included; these measures close the easy ways and make the hard ones deliberate.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from types import CodeType, MappingProxyType, ModuleType
from typing import Any

import torch
from torch import nn

import convlab
import convlab.layers
import convlab.models  # imports every model family, so the snapshot below sees them all
from convlab.check._messages import CheckError
from convlab.check._originals import (
    _MISSING_INTERNALS,
    _PRE_IMPORT_PROBLEMS,
    _all,
    _any,
    _bool,
    _cannot_run,
    _dict,
    _dict_items,
    _float,
    _getattr,
    _int,
    _isinstance,
    _issubclass,
    _len,
    _len_torch_dispatch_stack,
    _len_torch_function_stack,
    _list,
    _Module,
    _mro_of,
    _repr,
    _sorted,
    _str,
    _Tensor,
    _TensorBase,
    _tuple,
    _type,
    _zip,
)
from convlab.check._registry import _REGISTRY

__all__: list[str] = []  # private to convlab.check

_PACKAGE_DIR = os.path.dirname(os.path.abspath(convlab.__file__)) + os.sep
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_CHECK_PACKAGE = __name__.rpartition(".")[0]  # convlab.check
_CHECK_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _in_check_package(name: str) -> bool:
    return name == _CHECK_PACKAGE or name.startswith(_CHECK_PACKAGE + ".")


class _Snapshot:
    """Identity of every name the reference computations look up, taken at import."""

    def __init__(self) -> None:
        # (label, live dict, key, value, home: the package whose code may legitimately rebind it)
        self.entries: list[tuple[str, Any, str, object, str]] = []
        self.class_keys: list[tuple[str, type, frozenset[str], str]] = []

    def watch(self, label: str, namespace: Any, keys: Iterable[str], home: str) -> None:
        for key in keys:
            if key in namespace:
                self.entries.append((label, namespace, key, namespace[key], home))

    def watch_class(self, cls: type, home: str) -> None:
        label = f"{cls.__module__}.{cls.__qualname__}"
        namespace = cls.__dict__
        self.watch(label, namespace, list(namespace), home)
        self.class_keys.append((label, cls, frozenset(namespace), home))


_TENSOR_IGNORED = frozenset(
    {"__repr__", "__str__", "__format__", "__dir__", "__doc__", "__eq__", "__ne__", "__hash__"}
)
# Methods no checker calls (they move values with .to(device)): replacing them cannot change a
# check's result, and convlab.labs replaces .cuda() while grading on a machine without a GPU.
_NEVER_CALLED = frozenset({"cuda"})
_CLASS_IGNORED = frozenset({"__annotations__", "__doc__", "__dict__", "__weakref__", "_abc_impl"})
_TORCH_NAMES = (
    "cat concat concatenate stack flatten reshape add sub mul div matmul mm bmm addmm relu sigmoid "
    "tanh rsqrt sqrt exp mean var sum max min where clamp lerp conv1d conv2d conv3d batch_norm "
    "layer_norm group_norm max_pool2d avg_pool2d adaptive_avg_pool2d dropout bernoulli zeros ones "
    "zeros_like ones_like empty empty_like full randn rand tensor as_tensor no_grad enable_grad "
    "set_grad_enabled Tensor"
).split()
_MODULE_HOOK_DICTS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
    "_global_forward_hooks_always_called",
    "_global_forward_hooks_with_kwargs",
)


def _take_snapshot() -> _Snapshot:
    snap = _Snapshot()
    snap.watch("torch", vars(torch), _TORCH_NAMES, _TORCH_DIR)
    functional = vars(torch.nn.functional)
    keys = [k for k in functional if not k.startswith("__")]
    snap.watch("torch.nn.functional", functional, keys, _TORCH_DIR)
    module_globals = vars(torch.nn.modules.module)
    snap.watch("torch.nn.modules.module", module_globals, _MODULE_HOOK_DICTS, _TORCH_DIR)
    tensor_namespace = vars(_Tensor)
    keys = [k for k in tensor_namespace if k not in _TENSOR_IGNORED]
    snap.watch("torch.Tensor", tensor_namespace, keys, _TORCH_DIR)
    snap.class_keys.append(("torch.Tensor", _Tensor, frozenset(tensor_namespace), _TORCH_DIR))
    for value in list(vars(nn).values()):
        if _isinstance(value, _type) and _issubclass(value, _Module):
            snap.watch_class(value, _TORCH_DIR)
    convlab_modules = [
        module
        for name, module in _sorted(sys.modules.items())
        if _isinstance(module, ModuleType)
        and (name == "convlab" or name.startswith("convlab."))
        and not _in_check_package(name)  # its own modules: _capture_package
    ]
    for module in convlab_modules:
        namespace = vars(module)
        keys = [k for k in namespace if not k.startswith("__")]
        snap.watch(module.__name__, namespace, keys, _PACKAGE_DIR)
        for value in list(namespace.values()):
            origin = _getattr(value, "__module__", None)
            if _type(origin) is not _str or not origin.startswith("convlab"):
                continue
            if _isinstance(value, _type):
                snap.watch_class(value, _PACKAGE_DIR)
    return snap


_SNAPSHOT = _take_snapshot()
_HOOK_DICTS = [
    (name, vars(torch.nn.modules.module)[name])
    for name in _MODULE_HOOK_DICTS
    if name in vars(torch.nn.modules.module)
]
# module of convlab.check -> its globals, once the whole package is imported
_OWN_NAMES: dict[str, dict[str, object]] = {}


def _capture_package() -> None:
    """Note the globals of every module of convlab.check (once: the package's import calls it)."""
    if _OWN_NAMES:
        return
    for name, module in _sorted(sys.modules.items()):
        if _in_check_package(name) and _isinstance(module, ModuleType):
            _OWN_NAMES[name] = {k: v for k, v in vars(module).items() if not k.startswith("__")}


def _from_home(value: object, home: str) -> bool:
    """Whether ``value`` is Python code of the package in ``home`` (never convlab.check's).

    ``torch.compile`` rewraps ``torch.manual_seed`` and ``nn.Module.__init__``, and
    ``importlib.reload`` rebinds every name of a module; such rebinding by the library's own code
    is not tampering. Built-in functions must stay the very objects seen at import.
    """
    code = _getattr(value, "__code__", None)
    if _type(code) is not CodeType:
        function = _getattr(value, "__func__", None) or _getattr(value, "fget", None)
        code = _getattr(function, "__code__", None)
    if _type(code) is CodeType:
        filename = os.path.abspath(code.co_filename)
    elif _isinstance(value, _type):
        module = sys.modules.get(_getattr(value, "__module__", None) or "")
        filename = os.path.abspath(_getattr(module, "__file__", None) or "")
    else:
        return False
    return filename.startswith(home) and not filename.startswith(_CHECK_DIR)


_PLAIN_DATA = (
    _int,
    _float,
    _str,
    _bool,
    _type(None),
    _tuple,
    _list,
    _dict,
    frozenset,
    MappingProxyType,
)


def _same_data(a: object, b: object, depth: int = 0) -> bool:
    """Equal plain data (a table such as ``RESNET_STAGES``), compared with exact types only."""
    if _type(a) is not _type(b) or _type(a) not in _PLAIN_DATA or depth > 6:
        return False
    if _type(a) in (_dict, MappingProxyType):
        keys = _list(a.keys())
        return keys == _list(b.keys()) and _all(_same_data(a[k], b[k], depth + 1) for k in keys)
    if _type(a) is frozenset:
        a, b = _sorted(a, key=_repr), _sorted(b, key=_repr)  # type: ignore[arg-type]
    if _type(a) in (_tuple, _list):
        pairs = _zip(a, b)  # type: ignore[call-overload]
        return _len(a) == _len(b) and _all(_same_data(x, y, depth + 1) for x, y in pairs)
    return a == b


def _tampered_names() -> list[str]:
    """Names the reference computations use that were rebound since import by foreign code."""
    found: list[str] = []
    missing = object()
    for label, namespace, key, value, home in _SNAPSHOT.entries:
        current = namespace.get(key, missing)
        if current is value or _from_home(current, home) or _same_data(current, value):
            continue
        if key in _NEVER_CALLED:
            continue
        found.append(f"{label}.{key}")
    for label, cls, keys, home in _SNAPSHOT.class_keys:
        ignored = _TENSOR_IGNORED if cls is _Tensor else _CLASS_IGNORED
        for key, value in _list(_dict_items(_dict(cls.__dict__))):
            if key in keys or key in ignored or key in _NEVER_CALLED or _from_home(value, home):
                continue
            inherited = _any(key in base.__dict__ for base in _mro_of(cls)[1:])
            if inherited or (cls is _Tensor and key in _TensorBase.__dict__):
                found.append(f"{label}.{key}")
    return found


def _replaced_own_names() -> list[str]:
    """Globals of convlab.check's modules rebound since the package was imported."""
    found: list[str] = []
    for module_name, names in _dict_items(_OWN_NAMES):
        namespace = _getattr(sys.modules.get(module_name), "__dict__", None)
        if not _isinstance(namespace, _dict):
            namespace = {}
        for key, value in _dict_items(names):
            if namespace.get(key) is not value:
                found.append(f"{module_name}.{key} was replaced")
    return found


def _verify_environment() -> None:
    """Refuse to grade when something the reference computes with has been replaced.

    First, when this torch lacks an internal the checks rely on, raise the one-line error that
    names it and the versions (the set-up is at fault, not the student's code).
    """
    if _MISSING_INTERNALS:
        _cannot_run()
    problems = [
        f"{name} was replaced before convlab.check was imported" for name in _PRE_IMPORT_PROBLEMS
    ]
    problems += [
        f"{name} was replaced after convlab.check was imported" for name in _tampered_names()
    ]
    problems += _replaced_own_names()
    if not _REGISTRY.intact():
        problems.append("entries of convlab.check's reference registry were removed")
    if _len_torch_function_stack() or _len_torch_dispatch_stack():
        problems.append(
            "a torch function or dispatch mode (TorchFunctionMode, TorchDispatchMode) is active"
        )
    for name, hooks in _HOOK_DICTS:
        if _len(hooks):
            problems.append(f"a global module hook is registered (torch.nn.modules.module.{name})")
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems[:10])
        raise CheckError(
            "The checks cannot run, because the library functions the reference computes with have "
            f"been changed:\n{listing}\nRestart the kernel and run the notebook without replacing "
            "torch, torch.nn or convlab functions."
        )
    _REGISTRY.refresh()  # library modules imported since the last check become reference code
