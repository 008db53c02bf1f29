"""Answer checkers for the labs: shapes, parameter counts, behaviour, and whose work it is.

Every check returns ``None`` when the answer is right and raises :class:`CheckError` when it is
not, with a message meant for the student: what was expected, what was found, where (which layer,
parameter or output position), by how much, and a hint. The public and hidden tests of the
nbgrader labs call them, for example::

    block = MyBasicBlock(64, 64)
    check_own_implementation(block, inputs=(2, 64, 8, 8))
    check_output_shape(block, (2, 64, 8, 8), (2, 64, 8, 8))
    check_parameter_count(block, BasicBlock(64, 64), "BasicBlock(64, 64)")
    check_same_function(block, BasicBlock(64, 64), (2, 64, 8, 8))  # evaluation mode
    check_same_function(block, BasicBlock(64, 64), (2, 64, 8, 8), train=True)
    check_gradients(block, BasicBlock(64, 64), (2, 64, 8, 8))  # float64, CPU

Inputs. ``inputs`` is a shape such as ``(2, 64, 8, 8)`` (a seeded standard-normal tensor is made
inside the checker with a private ``torch.Generator``), a tensor (copied), or a list of these and
other plain arguments (``[(8, 4, 5, 5), running_mean, running_var, (4,), (4,), True]`` for a
``batch_norm`` function). Each side gets its own fresh copy, so an in-place operation on an input
cannot leak into the other side.

Weights. The reference is deep-copied and every floating-point tensor of it that is constant (as
batch norm's ``gamma = 1``, ``beta = 0``, running mean 0 and variance 1, and zero biases are) is
replaced by seeded random values, so that a misplaced or missing normalization cannot hide behind
an identity. Its parameters and persistent floating-point buffers are then copied into a deep copy
of the student's module (:func:`transfer_weights`): by shape in registration order
(``match="order"``, the default: define the layers in the reference's order; integer buffers such
as ``num_batches_tracked`` are paired only when both sides have the same number), or by state-dict
name (``match="name"``, for labs that prescribe attribute names). The caller's modules are left
as they were (a student's module that cannot be deep-copied is used, and changed, as it is).

Tolerance. Outputs are compared element by element as
``|yours - reference| <= rtol * (|reference| + scale)``, where ``scale`` is the root mean square
of the reference tensor, so the allowance follows the output's magnitude and still covers elements
near zero. ``rtol`` is:

* :data:`FLOAT32_RTOL` ``= 1e-4`` for float32 on a CPU, or on a GPU with TF32 off. Measured
  against float64 with this criterion, the float32 outputs of the course's networks (small-input
  configurations, batch 2, 32x32, batch-norm statistics randomized as here) are off by at most
  ``4e-6`` in evaluation mode (PreAct-ResNet-110) and ``2e-5`` in training mode (ResNeXt-50,
  where batch norm divides by statistics of few values); a student and the reference each err
  that much, so ``1e-4`` leaves a margin of more than two. It is still five times smaller than
  the smallest mistake the labs target (batch norm's ``eps = 1e-3`` instead of ``1e-5`` moves
  outputs by about ``5e-4``).
* On a CUDA device with TF32 on for convolutions or matrix products (cuDNN convolutions use TF32
  by default), four times the reference's own TF32 error, measured on the spot against a float64
  run of the reference, kept within [:data:`TF32_RTOL_MIN`, :data:`TF32_RTOL_MAX`] ``=
  [5e-3, 5e-2]``. TF32 keeps 10 mantissa bits (unit roundoff ``2^-11 = 4.9e-4``). Emulated on a
  CPU (every convolution and linear operand rounded to TF32), the same networks are off by
  ``2e-4`` (EfficientNet-B0) to ``5e-3`` (PreAct-ResNet-110) in evaluation mode and ``9e-4``
  (ResNet-56) to ``2.7e-2`` (ResNeXt-50) in training mode; ResNet-18 by ``4e-4`` and ``2e-3``.
  One fixed figure would be loose for a block or too tight for a deep network in training, hence
  the measurement; the floor covers a student whose operations round where the reference's do
  not, the ceiling keeps a broken measurement (dropout drawing differently in float64) from
  excusing anything. Real mistakes differ by ``O(1)``.
* :data:`FLOAT64_RTOL` ``= 1e-7`` for :func:`check_gradients`, which always runs in float64 on
  the CPU. Gradients of correct answers agree to ``1e-14`` there (a ResNet-18 included); the
  rest of the room is for correct but numerically different formulas (``E[x^2] - E[x]^2`` for a
  variance, a hand-written backward), while a mistake in the mathematics still differs by
  ``O(1)``. Gradients that are zero in exact arithmetic (a bias before batch norm in training)
  are compared against ``1e-3`` of the largest gradient scale, not against their own rounding
  noise.

Tamper resistance. Everything the checks rely on is captured when this module is imported:
builtins (``type``, ``isinstance``, ``len``, ``abs``, ...), torch functions, and ``Tensor`` methods
taken as unbound C methods of ``torch._C.TensorBase`` (an immutable type), so replacing
``torch.allclose``, ``torch.Tensor.__eq__`` or ``builtins.abs`` later changes nothing here.
Results become plain Python floats before any comparison. Students' outputs must be exactly
``torch.Tensor`` (subclasses and look-alike objects, such as one whose ``==`` is always true, are
refused) and are copied into fresh float64 CPU tensors before use. Each check first verifies that
the functions the *reference* computes with (``torch``, ``torch.nn.functional``, every
``torch.nn`` layer class, every convlab class and function, this module) are the ones seen at
import (or were rebound by the library's own code, as ``torch.compile`` and ``importlib.reload``
do), that no torch function or dispatch mode and no global module hook is active, and refuses
to grade otherwise. The student's code runs before the reference's (no reference output exists
yet to be found), under a profile hook that catches calls to the reference passed to the checker
and to the code of the convlab classes it is built from, and the private reference is sealed: its
layers, attributes and weights are verified after the student's code ran. Code that runs in the
same Python process can in the end rewrite anything, this module included; these measures close
the easy ways and make the hard ones deliberate.
"""

from __future__ import annotations

import builtins
import copy
import dis
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from types import CodeType, FunctionType, MappingProxyType, MethodType, ModuleType
from typing import Any

import torch
from torch import Tensor, nn

import convlab
import convlab.layers
import convlab.models  # imports every model family, so the snapshot below sees them all

__all__ = [
    "FLOAT32_RTOL",
    "FLOAT64_RTOL",
    "TF32_RTOL_MAX",
    "TF32_RTOL_MIN",
    "CheckError",
    "check_gradients",
    "check_output_shape",
    "check_own_implementation",
    "check_parameter_count",
    "check_same_function",
    "count_parameters",
    "transfer_weights",
]

FLOAT32_RTOL = 1e-4  # float32 on a CPU, or on a GPU with TF32 off (see the module docstring)
TF32_RTOL_MIN = 5e-3  # float32 on CUDA with TF32: at least this ...
TF32_RTOL_MAX = 5e-2  # ... at most this, 4x the reference's own TF32 error in between
FLOAT64_RTOL = 1e-7  # check_gradients, float64 on the CPU
_TF32_SAFETY = 4.0  # tolerance / the reference's measured TF32 error
_GRADIENT_SCALE_FLOOR = 1e-3  # fraction of the largest gradient RMS a gradient is measured against

Inputs = Any  # a shape, a tensor, or a sequence of shapes, tensors and plain arguments


class CheckError(AssertionError):
    """An answer is wrong; the message says what differs, where, by how much, and what to try.

    It derives from ``AssertionError`` so that nbgrader and pytest report it as a failed test.
    """


# ----------------------------------------------------------------------------------------------
# Private copies, taken at import, of everything the checks rely on.

_type = (0).__class__.__class__  # the real `type`, however `builtins.type` is bound
_BUILTIN_FUNCTION = _type([].append)
_float = (0.0).__class__
_int = (0).__class__
_bool = (True).__class__
_str = ("").__class__
_tuple = (()).__class__
_list = ([]).__class__
_dict = ({}).__class__
_mro_of = _type.__dict__["__mro__"].__get__  # a class's real MRO, whatever its metaclass says
_object = _mro_of(_type)[-1]
_get_attribute = _object.__getattribute__
_set_attribute = _object.__setattr__
_dict_items = _dict.items
_tuple_len = _tuple.__len__
_tuple_getitem = _tuple.__getitem__
_list_len = _list.__len__
_list_getitem = _list.__getitem__


def _builtin(name: str) -> Any:
    value = getattr(builtins, name)
    genuine = _type(value) is _BUILTIN_FUNCTION or (
        _type(value) is _type and value.__module__ == "builtins"
    )
    if not genuine:
        _PRE_IMPORT_PROBLEMS.append(f"builtins.{name}")
    return value


_PRE_IMPORT_PROBLEMS: list[str] = []
_isinstance = _builtin("isinstance")
_issubclass = _builtin("issubclass")
_len = _builtin("len")
_abs = _builtin("abs")
_id = _builtin("id")
_repr = _builtin("repr")
_sorted = _builtin("sorted")
_getattr = _builtin("getattr")
_range = _builtin("range")
_zip = _builtin("zip")
_enumerate = _builtin("enumerate")
_min = _builtin("min")
_max = _builtin("max")
_iter = _builtin("iter")
_next = _builtin("next")
_any = _builtin("any")
_all = _builtin("all")
_sum = _builtin("sum")
_vars = _builtin("vars")
_reversed = _builtin("reversed")
_set = _builtin("set")
_INF = _float("inf")
_math_sqrt = math.sqrt
_math_isfinite = math.isfinite
_deepcopy = copy.deepcopy
_getprofile = sys.getprofile
_setprofile = sys.setprofile
_get_instructions = dis.get_instructions

_TensorBase = torch._C.TensorBase
_Tensor = torch.Tensor
_Parameter = nn.Parameter
_Module = nn.Module
_Uninitialized = nn.parameter.UninitializedTensorMixin
_BatchNorm = nn.modules.batchnorm._BatchNorm
_ConvNd = nn.modules.conv._ConvNd
_Linear = nn.Linear
_Generator = torch.Generator
_Size = torch.Size
_float32 = torch.float32
_float64 = torch.float64
_CPU = torch.device("cpu")
_no_grad = torch.no_grad
_enable_grad = torch.enable_grad
_autograd_grad = torch.autograd.grad
_fork_rng = torch.random.fork_rng
_cpu_generator = torch.default_generator
_randn = torch.randn
_rand = torch.rand
_PRE_IMPORT_PROBLEMS += [
    name
    for name, f in (("torch.randn", _randn), ("torch.rand", _rand))
    if _type(f) is not _BUILTIN_FUNCTION
]
_DisableTorchFunctionSubclass = torch._C.DisableTorchFunctionSubclass
_len_torch_function_stack = torch._C._len_torch_function_stack
_len_torch_dispatch_stack = torch._C._len_torch_dispatch_stack
_register_forward_hook = _Module.register_forward_hook
_register_forward_pre_hook = _Module.register_forward_pre_hook
_module_to = _Module.to


def _tensor_method(name: str) -> Any:
    return _TensorBase.__dict__[name]  # C methods of an immutable type: cannot be replaced


_t_detach = _tensor_method("detach")
_t_clone = _tensor_method("clone")
_t_to = _tensor_method("to")
_t_sub = _tensor_method("sub")
_t_abs = _tensor_method("abs")
_t_add = _tensor_method("add")
_t_mul = _tensor_method("mul")
_t_div = _tensor_method("div")
_t_max = _tensor_method("max")
_t_min = _tensor_method("min")
_t_argmax = _tensor_method("argmax")
_t_sum = _tensor_method("sum")
_t_mean = _tensor_method("mean")
_t_gt = _tensor_method("gt")
_t_item = _tensor_method("item")
_t_reshape = _tensor_method("reshape")
_t_numel = _tensor_method("numel")
_t_copy_ = _tensor_method("copy_")
_t_requires_grad_ = _tensor_method("requires_grad_")
_t_nan_to_num = _tensor_method("nan_to_num")
_t_is_floating_point = _tensor_method("is_floating_point")
_t_getitem = _tensor_method("__getitem__")
_t_shape = _tensor_method("shape").__get__
_t_dtype = _tensor_method("dtype").__get__
_t_device = _tensor_method("device").__get__
_t_requires_grad = _tensor_method("requires_grad").__get__
_t_is_nested = _tensor_method("is_nested").__get__
_t_layout = _tensor_method("layout").__get__
_strided = torch.strided


_PACKAGE_DIR = os.path.dirname(os.path.abspath(convlab.__file__)) + os.sep
_DEVICE_FILE = os.path.join(_PACKAGE_DIR, "device.py")
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_THIS_FILE = os.path.abspath(__file__)
# Code from these places is someone else's answer: convlab's references, torchvision's models
# and blocks, timm. Matched on the module of a class or function and on the file of running code.
_FOREIGN_MODULES = ("torchvision.models", "torchvision.ops", "timm")
_FOREIGN_PATHS = tuple(
    os.sep + part.replace(".", os.sep) + os.sep
    for part in ("torchvision.models", "torchvision.ops", "timm")
)


# ----------------------------------------------------------------------------------------------
# The snapshot: what convlab, torch.nn and torch look like at import.


def _code_objects(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if _type(const) is CodeType:
            yield from _code_objects(const)


def _functions_of(value: object) -> list[FunctionType]:
    """Plain functions behind a class attribute (methods, static/class methods, properties)."""
    if _type(value) is FunctionType:
        return [value]
    if _isinstance(value, (staticmethod, classmethod)):
        return _functions_of(value.__func__)
    if _isinstance(value, property):
        return [f for part in (value.fget, value.fset, value.fdel) for f in _functions_of(part)]
    return []


class _Snapshot:
    """Identity of every name the reference computations look up, taken at import."""

    def __init__(self) -> None:
        # (label, live dict, key, value, home: the package whose code may legitimately rebind it)
        self.entries: list[tuple[str, Any, str, object, str]] = []
        self.class_keys: list[tuple[str, type, frozenset[str], str]] = []
        self.reference_ids: dict[int, str] = {}  # convlab class or function -> qualified name
        self.reference_by_name: dict[str, object] = {}
        self.reference_codes: dict[int, str] = {}  # code object of reference code -> label
        self.keep: list[object] = []  # strong references, so that ids stay unique

    def watch(self, label: str, namespace: Any, keys: Iterable[str], home: str) -> None:
        for key in keys:
            if key in namespace:
                self.entries.append((label, namespace, key, namespace[key], home))

    def watch_class(self, cls: type, home: str) -> None:
        label = f"{cls.__module__}.{cls.__qualname__}"
        namespace = cls.__dict__
        self.watch(label, namespace, list(namespace), home)
        self.class_keys.append((label, cls, frozenset(namespace), home))

    def add_reference(self, qualified: str, obj: object) -> None:
        if _id(obj) in self.reference_ids:
            return
        self.reference_ids[_id(obj)] = qualified
        self.reference_by_name[qualified] = obj
        self.keep.append(obj)
        functions = _functions_of(obj)
        if _isinstance(obj, _type):
            functions = [f for value in obj.__dict__.values() for f in _functions_of(value)]
        for function in functions:
            for code in _code_objects(function.__code__):
                self.reference_codes[_id(code)] = f"{qualified} ({function.__qualname__})"
                self.keep.append(code)


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
        and name != __name__
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
                snap.add_reference(f"{origin}.{value.__qualname__}", value)
                snap.watch_class(value, _PACKAGE_DIR)
            elif _type(value) is FunctionType:
                snap.add_reference(f"{origin}.{value.__qualname__}", value)
    return snap


_SNAPSHOT = _take_snapshot()
_HOOK_DICTS = [
    (name, vars(torch.nn.modules.module)[name])
    for name in _MODULE_HOOK_DICTS
    if name in vars(torch.nn.modules.module)
]


def _from_home(value: object, home: str) -> bool:
    """Whether ``value`` is Python code of the package in ``home`` (never this module).

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
    return filename.startswith(home) and filename != _THIS_FILE


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


def _verify_environment() -> None:
    """Refuse to grade when something the reference computes with has been replaced."""
    problems = [
        f"{name} was replaced before convlab.check was imported" for name in _PRE_IMPORT_PROBLEMS
    ]
    problems += [
        f"{name} was replaced after convlab.check was imported" for name in _tampered_names()
    ]
    module_namespace = _vars(sys.modules[__name__])
    for key, value in _dict_items(_OWN_NAMES):
        if module_namespace.get(key) is not value:
            problems.append(f"convlab.check.{key} was replaced")
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


# ----------------------------------------------------------------------------------------------
# Formatting.


def _fmt_shape(shape: Sequence[int]) -> str:
    dims = [_str(_int(d)) for d in shape]
    return "(" + ", ".join(dims) + ("," if _len(dims) == 1 else "") + ")"


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _layer(path: str) -> str:
    return f"layer `{path}`" if path else "module as a whole"


def _describe(obj: object) -> str:
    cls = obj if _isinstance(obj, _type) else _type(obj)
    module = _getattr(cls, "__module__", "")
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


# ----------------------------------------------------------------------------------------------
# Walking modules without calling their (overridable) methods.


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


# ----------------------------------------------------------------------------------------------
# Tensors: making inputs, accepting outputs, comparing.


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


def _rms(tensor: Tensor) -> float:
    if _t_numel(tensor) == 0:
        return 0.0
    return _math_sqrt(_float(_t_item(_t_mean(_t_mul(tensor, tensor)))))


@dataclass(frozen=True)
class _Mismatch:
    """Where two tensors differ most, relative to the tolerance."""

    position: tuple[int, ...]
    yours: float
    reference: float
    max_difference: float
    bad: int
    total: int
    scale: float
    rtol: float

    def report(self, what: str) -> str:
        index = ", ".join(_str(i) for i in self.position)
        difference = _abs(self.yours - self.reference)
        relative = self.max_difference / self.scale if self.scale > 0 else _INF
        return (
            f"{what} differs from the reference.\n"
            f"  largest difference (relative to the tolerance) at [{index}]: "
            f"yours {_fmt(self.yours)}, reference {_fmt(self.reference)}, "
            f"|difference| {_fmt(difference)}\n"
            f"  maximum |difference| {_fmt(self.max_difference)}, relative error "
            f"{_fmt(relative)} (maximum |difference| / RMS of the reference, {_fmt(self.scale)})\n"
            f"  elements out of tolerance: {self.bad:,} of {self.total:,} "
            f"({100.0 * self.bad / _max(self.total, 1):.1f}%); tolerance "
            f"|yours - reference| <= {self.rtol:g} * (|reference| + {_fmt(self.scale)})"
        )


def _compare(yours: Tensor, reference: Tensor, rtol: float, floor: float = 0.0) -> _Mismatch | None:
    """Compare two fresh float64 CPU tensors of one shape; ``None`` when within tolerance.

    Element ``i`` passes when ``|yours_i - reference_i| <= rtol * (|reference_i| + scale)``,
    ``scale`` being the RMS of ``reference`` (at least ``floor``; 1 for an all-zero reference).
    NaN and infinity never pass. ``rtol = 0`` asks for exact equality.
    """
    total = _int(_t_numel(reference))
    if total == 0:
        return None
    scale = _max(_rms(reference), floor)
    if scale == 0.0 or not _math_isfinite(scale):
        scale = 1.0
    difference = _t_nan_to_num(_t_abs(_t_sub(yours, reference)), nan=_INF, posinf=_INF)
    allowed = _t_mul(_t_add(_t_abs(reference), scale), rtol)
    bad = _int(_t_item(_t_sum(_t_gt(difference, allowed))))
    if bad == 0:
        return None
    ratio = _t_reshape(_t_div(difference, _t_add(allowed, 1e-300)), (-1,))
    worst = _int(_t_item(_t_argmax(ratio)))
    position: list[int] = []
    rest = worst
    for size in _reversed(_tuple(_t_shape(reference))):
        position.append(rest % size)
        rest //= size
    position.reverse()
    return _Mismatch(
        position=_tuple(position),
        yours=_float(_t_item(_t_getitem(_t_reshape(yours, (-1,)), worst))),
        reference=_float(_t_item(_t_getitem(_t_reshape(reference, (-1,)), worst))),
        max_difference=_float(_t_item(_t_max(difference))),
        bad=bad,
        total=total,
        scale=scale,
        rtol=rtol,
    )


def _flag(read: Callable[[], object]) -> object:
    """A backend flag, or None where reading it fails (mixed legacy and new TF32 settings)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read()
    except Exception:
        return None


def _tf32_enabled(device: torch.device) -> bool:
    """Whether float32 convolutions or matrix products on ``device`` may round to TF32.

    Any setting that says so counts: the ``fp32_precision`` settings of torch 2.9 and later
    (cuDNN convolutions default to ``"tf32"``), the older ``allow_tf32`` flags, and
    ``torch.get_float32_matmul_precision()``. Erring towards TF32 only lets the tolerance follow
    the reference's measured error.
    """
    if device.type != "cuda":
        return False
    backends = torch.backends
    flags = [
        _flag(lambda: backends.cudnn.conv.fp32_precision) == "tf32",
        _flag(lambda: backends.cuda.matmul.fp32_precision) == "tf32",
        _flag(lambda: backends.cudnn.allow_tf32) is True,
        _flag(lambda: backends.cuda.matmul.allow_tf32) is True,
        _flag(torch.get_float32_matmul_precision) in ("high", "medium"),
    ]
    return _any(flags)


def _tf32_tolerance(
    reference64: Any,
    specs: list[object],
    seed: int,
    device: torch.device,
    train: bool,
    theirs: list[Tensor | None],
) -> float:
    """The TF32 tolerance: 4x the reference's own error, within [TF32_RTOL_MIN, TF32_RTOL_MAX].

    The reference's float32 outputs ``theirs`` are measured against ``reference64`` (the same
    reference with the same weights in float64, where TF32 never applies) on the same inputs,
    with the criterion of :func:`_compare`.
    """
    args = _make_args(specs, seed, device, _float64, grad=False)
    with _no_grad():
        exact = _call(reference64, args, seed, device, train, None, "", [], {})
    drift = 0.0
    for rounded, precise in _zip(theirs, exact):
        if rounded is None or precise is None:
            continue
        a, b = _fresh(rounded), _fresh(precise)
        scale = _rms(b) or 1.0
        ratio = _t_div(_t_abs(_t_sub(a, b)), _t_add(_t_abs(b), scale))
        if _t_numel(ratio):
            drift = _max(drift, _float(_t_item(_t_max(_t_nan_to_num(ratio, nan=1.0)))))
    return _min(_max(TF32_RTOL_MIN, _TF32_SAFETY * drift), TF32_RTOL_MAX)


def _device_of(obj: object, specs: list[object]) -> torch.device:
    if _is_module(obj):
        for kind in ("_parameters", "_buffers"):
            for entry in _entries(obj, kind):
                return _t_device(entry.tensor)
    for spec in specs:
        if _isinstance(spec, _Tensor):
            return _t_device(spec)
    return _CPU


# ----------------------------------------------------------------------------------------------
# Running the student's code: errors become messages, reference calls are caught.


class _Tracer:
    """A profile hook that notes calls the student's code must not make while it runs.

    With a ``policy``, calls into reference code (convlab's, or what the exercise forbids,
    C functions included) count, except inside what the policy allows. ``instances`` holds ids
    of the reference modules given to a checker, whose ``forward`` (``instance_codes``) must
    not be called; ``reference_labels`` names code that must not run at all.
    """

    def __init__(
        self,
        policy: _Policy | None,
        instance_codes: frozenset[int] = frozenset(),
        instances: frozenset[int] = frozenset(),
        reference_labels: dict[int, str] | None = None,
    ) -> None:
        self.policy = policy
        self.instance_codes = instance_codes
        self.instances = instances
        self.reference_labels = reference_labels or {}
        self.inside_allowed: list[object] = []
        self.hits: list[str] = []

    def __call__(self, frame: Any, event: str, arg: object) -> None:
        if event == "return":
            if self.inside_allowed and self.inside_allowed[-1] is frame:
                self.inside_allowed.pop()
            return
        allowed = self.policy.allowed_codes if self.policy is not None else frozenset()
        if event == "call" and _id(frame.f_code) in allowed:
            self.inside_allowed.append(frame)
            return
        if self.inside_allowed or _len(self.hits) >= 3:
            return
        if event == "c_call":
            name = self.policy.forbidden.get(_id(arg)) if self.policy is not None else None
            if name is not None:
                self.hits.append(name)
            return
        if event != "call":
            return
        code = frame.f_code
        if _id(code) in self.instance_codes:
            owner = frame.f_locals.get("self")
            if _id(owner) in self.instances:
                self.hits.append(
                    f"the reference module passed to the checker ({_describe(owner)}.forward)"
                )
                return
        label = self.reference_labels.get(_id(code))
        if label is None and self.policy is not None:
            label = self.policy.forbidden_codes.get(_id(code)) or _reference_code_label(code)
        if label is not None:
            self.hits.append(label)


def _reference_code_label(code: CodeType) -> str | None:
    label = _SNAPSHOT.reference_codes.get(_id(code))
    if label is not None:
        return label
    filename = os.path.abspath(code.co_filename)
    name = _getattr(code, "co_qualname", code.co_name)
    # convlab.device only places tensors (and keeps .cuda() on the CPU when grading): not a reference
    if filename.startswith(_PACKAGE_DIR) and filename not in (_THIS_FILE, _DEVICE_FILE):
        relative = os.path.relpath(filename, os.path.dirname(_PACKAGE_DIR[:-1]))
        return f"{name} ({relative}:{code.co_firstlineno})"
    if _any(part in filename for part in _FOREIGN_PATHS):
        return f"{name} ({filename}:{code.co_firstlineno})"
    return None


def _run_traced(function: Callable[[], Any], tracer: _Tracer | None, what: str) -> Any:
    """Call ``function`` (under ``tracer``, if any); the student's errors become a CheckError."""
    previous = _getprofile()
    if tracer is not None:
        _setprofile(tracer)
    try:
        result = function()
    except CheckError:
        raise
    except Exception as error:
        raise CheckError(f"{what} raised {_type(error).__name__}: {error}") from error
    finally:
        replaced = tracer is not None and _getprofile() is not tracer
        if tracer is not None:
            try:
                _setprofile(previous)
            except TypeError:  # a C-level profiler (cProfile) cannot be reinstalled from Python
                _setprofile(None)
    if replaced:
        raise CheckError(
            f"{what} replaced the interpreter's profile hook (sys.setprofile), which the checks "
            "use to see whose code runs; remove that call."
        )
    return result


def _guard(student: object, given: object, reference: object) -> _Tracer:
    """A tracer for running the student's code while the reference is within reach.

    It catches calls to the ``forward`` of the reference modules themselves (the caller's and the
    private copy), and to any code of the convlab classes the reference is built from (a deep
    copy of the reference called by a student who found it on the stack) unless the student's
    module is built from the same class (a lab may allow ``ConvBNAct``).
    """
    own = _set()
    if _is_module(student):
        own = {_id(_type(module)) for _, module in _walk(student)}
    instance_codes: set[int] = _set()
    instances: set[int] = _set()
    labels: dict[int, str] = {}
    for obj in (given, reference):
        if not _is_module(obj):
            if _type(obj) is FunctionType and _origin(obj) is not None:
                for code in _code_objects(obj.__code__):
                    labels[_id(code)] = f"{_origin(obj)}, the reference this check compares against"
            continue
        for _, module in _walk(obj):
            instances.add(_id(module))
            forward = _getattr(_type(module), "forward", None)
            if _type(forward) is FunctionType:
                instance_codes.add(_id(forward.__code__))
            for base in _mro_of(_type(module)):
                name = _origin(base)
                if name is None or _id(base) in own:
                    continue
                for value in _list(base.__dict__.values()):
                    for function in _functions_of(value):
                        for code in _code_objects(function.__code__):
                            labels[_id(code)] = (
                                f"{name} ({function.__qualname__}), the reference this check "
                                "compares against"
                            )
    return _Tracer(None, frozenset(instance_codes), frozenset(instances), labels)


class _Seal:
    """The structure and values of a private reference, to verify nothing touched it."""

    def __init__(self, root: object) -> None:
        self.root = root
        self.structure = self._structure()
        self.values = [
            (entry.name, _fresh(entry.tensor))
            for kind in ("_parameters", "_buffers")
            for entry in (_entries(root, kind) if _is_module(root) else [])
        ]

    def _structure(self) -> list[object]:
        if not _is_module(self.root):
            return []
        found: list[object] = []
        for path, module in _walk(self.root):
            state = _get_attribute(module, "__dict__")
            found.append((path, _id(module), _id(_type(module))))
            for key, value in _list(_dict_items(state)):
                if key == "training":
                    continue
                found.append((path, key, _id(value)))
                if _type(value) is _dict:
                    found.extend((path, key, k, _id(v)) for k, v in _list(_dict_items(value)))
        return found

    def verify(self, what: str) -> None:
        changed = self._structure() != self.structure
        if not changed and _is_module(self.root):
            current = {
                entry.name: entry.tensor
                for kind in ("_parameters", "_buffers")
                for entry in _entries(self.root, kind)
            }
            for name, value in self.values:
                tensor = current.get(name)
                if tensor is None or _compare(_fresh(tensor), value, 0.0) is not None:
                    changed = True
                    break
        if changed:
            raise CheckError(
                f"{what} changed the reference module the checker compares against (its layers, "
                "attributes or weights); it must compute the result itself."
            )


# ----------------------------------------------------------------------------------------------
# Counting parameters.


def count_parameters(module: nn.Module) -> int:
    """The number of parameters of ``module``, each shared tensor counted once.

    Args:
        module: any ``nn.Module``.

    Returns:
        The total number of elements of its parameters.
    """
    return _sum_numel(_entries(module, "_parameters"))


def _sum_numel(entries: list[_Entry]) -> int:
    total = 0
    for entry in entries:
        total += _int(_t_numel(entry.tensor))
    return total


def _breakdown(module: nn.Module) -> list[tuple[str, str, list[str], int]]:
    """Per module that owns parameters: (path, class, parameter shapes, count)."""
    rows: dict[str, tuple[str, str, list[str], int]] = {}
    classes = {path: _type(m).__name__ for path, m in _walk(module)}
    for entry in _entries(module, "_parameters"):
        path, cls, shapes, count = rows.get(
            entry.owner, (entry.owner, classes.get(entry.owner, "?"), [], 0)
        )
        leaf = entry.name[_len(entry.owner) + 1 :] if entry.owner else entry.name
        shapes = [*shapes, f"{leaf} {_fmt_shape(_t_shape(entry.tensor))}"]
        rows[entry.owner] = (path, cls, shapes, count + _int(_t_numel(entry.tensor)))
    return _list(rows.values())


def _breakdown_text(rows: list[tuple[str, str, list[str], int]], limit: int = 30) -> str:
    lines = [
        f"    {path or '(top level)'} ({cls}): {', '.join(shapes)} = {count:,}"
        for path, cls, shapes, count in rows[:limit]
    ]
    if _len(rows) > limit:
        lines.append(f"    ... and {_len(rows) - limit} more layers")
    return "\n".join(lines) if lines else "    (no parameters)"


def check_parameter_count(
    module: nn.Module, expected: int | nn.Module, what: str = "the reference"
) -> None:
    """Check that ``module`` has as many parameters as expected.

    Args:
        module: the student's module.
        expected: the expected count, or a reference module whose count (and per-layer
            breakdown, shown next to the student's on failure) is expected.
        what: how to name the reference in the message, for example ``"BasicBlock(64, 64)"``.

    Raises:
        CheckError: with the student's per-layer breakdown, the difference, the first layer whose
            count differs from the reference's, and a hint.
    """
    _verify_environment()
    if not _is_module(module):
        raise CheckError(f"Expected an nn.Module to count parameters of, got {_describe(module)}.")
    found = count_parameters(module)
    reference_rows = None
    if _is_module(expected):
        reference_rows = _breakdown(expected)
        expected_count = count_parameters(expected)
    else:
        expected_count = _int(expected)
    if found == expected_count:
        return
    rows = _breakdown(module)
    difference = found - expected_count
    lines = [
        f"Your module has {found:,} parameters; {what} has {expected_count:,} "
        f"({'+' if difference > 0 else ''}{difference:,}).",
        "  Your layers:",
        _breakdown_text(rows),
    ]
    if reference_rows is not None:
        lines += ["  Reference layers:", _breakdown_text(reference_rows)]
        for mine, theirs in _zip(rows, reference_rows):
            if mine[3] != theirs[3]:
                lines.append(
                    f"  First difference: your {_layer(mine[0])} has "
                    f"{mine[3]:,}, the reference's {_layer(theirs[0])} has {theirs[3]:,}."
                )
                break
    layers = _dict(_walk(module))
    conv_biases = _sum(
        _int(_t_numel(entry.tensor))
        for entry in _entries(module, "_parameters")
        if entry.name.endswith("bias") and _isinstance(layers.get(entry.owner), _ConvNd)
    )
    if difference > 0 and difference == conv_biases:
        lines.append(
            "  Hint: the difference is exactly the biases of your convolutions; a convolution "
            "followed by batch norm needs no bias (bias=False), batch norm's beta replaces it."
        )
    else:
        lines.append(
            "  Hint: compare the layers above one by one: channel counts, kernel sizes, groups of "
            "grouped convolutions, bias=False before batch norm, and layers missing or extra."
        )
    raise CheckError("\n".join(lines))


# ----------------------------------------------------------------------------------------------
# Output shape.


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
        input_shape: shape of the input, or inputs as described in the module docstring.
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


# ----------------------------------------------------------------------------------------------
# Weights.


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


# ----------------------------------------------------------------------------------------------
# Same function.


@dataclass
class _Record:
    """Inputs and outputs of one layer's first call, for finding where two networks part."""

    order: int
    input: Tensor | None
    output: Tensor | None


def _record_hooks(root: nn.Module, paths: Iterable[str], records: dict[str, _Record]) -> list[Any]:
    modules = _dict(_walk(root))
    handles = []
    counter = [0]
    for path in _set(paths):
        module = modules.get(path)
        if module is None:
            continue

        def pre_hook(module: nn.Module, args: Any, path: str = path) -> None:
            if path in records:
                return
            first = args[0] if _type(args) is _tuple and args else None
            tensor = _t_clone(_t_detach(first)) if _type(first) is _Tensor else None
            records[path] = _Record(counter[0], tensor, None)
            counter[0] += 1

        def hook(module: nn.Module, args: Any, output: Any, path: str = path) -> None:
            record = records.get(path)
            if record is not None and record.output is None and _type(output) is _Tensor:
                record.output = _t_clone(_t_detach(output))

        handles.append(_register_forward_pre_hook(module, pre_hook))
        handles.append(_register_forward_hook(module, hook))
    return handles


def _layer_hint(module: nn.Module | None, train: bool) -> str:
    if module is None:
        return ""
    if _isinstance(module, _BatchNorm) or _isinstance(module, convlab.layers.BatchNorm):
        eps = _getattr(module, "eps", 1e-5)
        if train:
            return (
                "In training mode batch norm normalizes with the current batch's mean and biased "
                "variance (over N, H and W for each channel), not with running_mean and "
                f"running_var; then gamma * x_hat + beta, with eps = {eps:g}."
            )
        return (
            "In evaluation mode batch norm normalizes with running_mean and running_var, not with "
            f"the batch's statistics; then gamma * x_hat + beta, with eps = {eps:g}."
        )
    if _isinstance(module, _ConvNd):
        return (
            f"The reference convolution has kernel_size={module.kernel_size}, "
            f"stride={module.stride}, padding={module.padding}, dilation={module.dilation}, "
            f"groups={module.groups}, bias={module.bias is not None}: compare yours."
        )
    if _isinstance(module, _Linear):
        return "Check that the linear layer gets its input flattened the same way (x.flatten(1))."
    return ""


def _locate(
    student_records: dict[str, _Record],
    reference_records: dict[str, _Record],
    owners: dict[str, str],
    reference_modules: dict[str, nn.Module],
    rtol: float,
    train: bool,
) -> str:
    """Say where the student's network first parts from the reference, layer by layer."""
    ordered = _sorted(
        (record.order, path) for path, record in _dict_items(student_records) if path in owners
    )
    previous = None
    for _, path in ordered:
        mine = student_records[path]
        theirs = reference_records.get(owners[path])
        if theirs is None:
            return (
                f"\n  Where: your {_layer(path)} ran, but its reference counterpart, "
                f"the reference's {_layer(owners[path])}, did not; look at the order of your "
                "forward."
            )
        reference_module = reference_modules.get(owners[path])
        for which, a, b in (
            ("input", mine.input, theirs.input),
            ("output", mine.output, theirs.output),
        ):
            if a is None or b is None:
                continue
            if _tuple(_t_shape(a)) != _tuple(_t_shape(b)):
                return (
                    f"\n  Where: your {_layer(path)} gets {which} of shape "
                    f"{_fmt_shape(_t_shape(a))}, the reference's {_layer(owners[path])} "
                    f"{_fmt_shape(_t_shape(b))}."
                )
            mismatch = _compare(_fresh(a), _fresh(b), rtol)
            if mismatch is None:
                continue
            if which == "input":
                where = (
                    f"between your {_layer(previous)} and your {_layer(path)}"
                    if previous is not None
                    else f"before your first layer with weights, your {_layer(path)}"
                )
                return (
                    f"\n  Where: the difference appears {where}: the layers with weights up to "
                    f"there agree with the reference, but your {_layer(path)} receives a "
                    "different input "
                    f"(max |difference| {_fmt(mismatch.max_difference)}). Look at what your "
                    "forward does there: an activation (ReLU) missing, extra or in the wrong "
                    "place, a pooling, a skip connection, or the order of the layers."
                )
            hint = _layer_hint(reference_module, train)
            return (
                f"\n  Where: your {_layer(path)} (matched to the reference's "
                f"{_layer(owners[path])}, a {_type(reference_module).__name__}) receives the same "
                f"input but computes a different output (max |difference| "
                f"{_fmt(mismatch.max_difference)}). {hint}"
            )
        previous = path
    if previous is not None:
        return (
            f"\n  Where: every layer with weights agrees with the reference, up to your last one, "
            f"your {_layer(previous)}; the difference arises after it. Look at the end of your "
            "forward: "
            "the skip connection (adding the input or the shortcut), the final activation, a "
            "concatenation or a pooling."
        )
    return ""


def _owners(pairs: list[tuple[_Entry, _Entry]]) -> dict[str, str]:
    """Student module path -> reference module path, where the weights say so unambiguously."""
    candidates: dict[str, set[str]] = {}
    for mine, theirs in pairs:
        candidates.setdefault(mine.owner, _set()).add(theirs.owner)
    return {path: _next(_iter(refs)) for path, refs in _dict_items(candidates) if _len(refs) == 1}


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


def _call(
    function: Any,
    args: _Args,
    seed: int,
    device: torch.device,
    train: bool,
    tracer: _Tracer | None,
    what: str,
    record: list[str],
    records: dict[str, _Record],
) -> list[Tensor | None]:
    handles = _record_hooks(function, record, records) if _is_module(function) else []
    index = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        with _fork_rng(devices=[] if index is None else [index]):
            _cpu_generator.manual_seed(seed)  # the global generators, as dropout uses them
            if index is not None:
                torch.cuda.default_generators[index].manual_seed(seed)
            if _is_module(function):
                _set_training(function, train)
            call = lambda: function(*args.values)  # noqa: E731
            result = call() if tracer is None else _run_traced(call, tracer, what)
    finally:
        for handle in handles:
            handle.remove()
    where = "Your module's output" if tracer is not None else "The reference's output"
    return _outputs(result, where)


def _after_student(tracer: _Tracer, seal: _Seal, what: str) -> None:
    """After the student's code ran: nothing it must not call, nothing it must not touch."""
    if tracer.hits:
        raise CheckError(
            f"{what}: your code called {tracer.hits[0]}; it must compute the result itself."
        )
    _verify_environment()
    seal.verify(what)


def _compare_outputs(
    mine: list[Tensor | None],
    theirs: list[Tensor | None],
    rtol: float,
    what: str,
    floor_share: float = 0.0,
) -> str | None:
    if _len(mine) != _len(theirs):
        return f"{what} has {_len(mine)} tensors; the reference returns {_len(theirs)}."
    for i, (a, b) in _enumerate(_zip(mine, theirs)):
        label = what if _len(mine) == 1 else f"{what} [{i}]"
        if (a is None) != (b is None):
            yours, theirs_ = ("None", "a tensor") if a is None else ("a tensor", "None")
            return f"{label} is {yours}; the reference's is {theirs_}."
        if a is None or b is None:
            continue
        if _t_dtype(a) != _t_dtype(b):
            return (
                f"{label} has dtype {_t_dtype(a)}, the reference's {_t_dtype(b)}: somewhere a "
                "tensor is created or cast with a fixed dtype (torch.ones(...) without "
                "dtype=x.dtype, .float(), .double())."
            )
        if _tuple(_t_shape(a)) != _tuple(_t_shape(b)):
            got, expected = _tuple(_t_shape(a)), _tuple(_t_shape(b))
            return (
                f"{label} has shape {_fmt_shape(got)}, the reference's {_fmt_shape(expected)}. "
                f"{_shape_hint(got, expected)}"
            )
        mismatch = _compare(_fresh(a), _fresh(b), rtol, floor_share)
        if mismatch is not None:
            return mismatch.report(label)
    return None


def _state_differences(
    pairs: list[tuple[_Entry, _Entry]],
    rtol: float,
    train: bool,
) -> str | None:
    for mine, theirs in pairs:
        if _isinstance(mine.tensor, _Parameter) or not _t_is_floating_point(mine.tensor):
            continue
        mismatch = _compare(_fresh(mine.tensor), _fresh(theirs.tensor), rtol)
        if mismatch is None:
            continue
        step = "one training step" if train else "one forward pass in evaluation mode"
        hint = (
            "In training, batch norm updates running = (1 - momentum) * running + momentum * "
            "batch statistic, with the batch's unbiased variance (n / (n - 1) times the biased "
            "one) for running_var, momentum = 0.1 by default, and outside autograd."
            if train
            else "In evaluation mode the running statistics must not change."
        )
        return (
            mismatch.report(
                f"After {step}, your buffer `{mine.name}` (matched to the reference's "
                f"`{theirs.name}`)"
            )
            + f"\n  Hint: {hint}"
        )
    return None


def check_same_function(
    student: Callable[..., Any],
    reference: Callable[..., Any],
    inputs: Inputs,
    *,
    train: bool = False,
    match: str = "order",
    seed: int = 0,
    rtol: float | None = None,
) -> None:
    """Check that the student's module computes what the reference computes, given its weights.

    Both are copied (the caller's objects are not changed), the reference's constant tensors are
    randomized, its weights are loaded into the student's copy (:func:`transfer_weights`), and
    both run on the same seeded inputs on the device of the student's parameters, in evaluation
    mode (``train=False``) or training mode (``train=True``), with the same random seed for
    dropout. The student's code runs first. Outputs must be plain tensors of the reference's
    shape and dtype, and agree within the tolerance of the module docstring; after the call the
    floating-point buffers (batch norm's running statistics, updated in training, unchanged in
    evaluation) must agree too. For functions (no weights), tensor arguments given as tensors are
    compared after the call as well, since a ``batch_norm`` function updates them in place.

    Args:
        student: the student's module or function.
        reference: the reference module or function.
        inputs: a shape, a tensor, or a list of shapes, tensors and plain arguments.
        train: compare in training mode (batch statistics, running-statistics updates).
        match: how weights are paired: ``"order"`` or ``"name"``.
        seed: seed of the inputs, the randomized weights and dropout.
        rtol: tolerance override; by default :data:`FLOAT32_RTOL`, or with TF32 on CUDA four
            times the reference's measured TF32 error (see the module docstring).

    Raises:
        CheckError: with the largest difference (position, both values, relative error), the
            number of elements out of tolerance, where in the network the difference first
            appears (which layer, or between which layers), and a hint.
    """
    _verify_environment()
    specs = _input_specs(inputs)
    device = _device_of(student, specs)
    tf32 = rtol is None and _tf32_enabled(device)
    mode = "training" if train else "evaluation"
    given = reference
    student, reference, pairs = _prepare(
        student, reference, specs, seed=seed, device=device, dtype=None, match=match
    )
    reference64 = _deepcopy(reference) if tf32 else None
    owners = _owners(pairs)
    tracer = _guard(student, given, reference)
    seal = _Seal(reference)
    mine_args = _make_args(specs, seed, device, _float32, grad=False)
    theirs_args = _make_args(specs, seed, device, _float32, grad=False)
    what = f"Calling your module on {_args_text(mine_args)} in {mode} mode"
    mine_records: dict[str, _Record] = {}
    theirs_records: dict[str, _Record] = {}
    with _no_grad():
        mine = _call(
            student, mine_args, seed, device, train, tracer, what, _list(owners), mine_records
        )
        _after_student(tracer, seal, what)
        theirs = _call(
            reference,
            theirs_args,
            seed,
            device,
            train,
            None,
            "",
            _list(owners.values()),
            theirs_records,
        )
    _verify_environment()
    if rtol is not None:
        precision = f"rtol {rtol:g} on {device}"
    elif tf32:
        if _is_module(reference64):
            _module_to(reference64, dtype=_float64)
        rtol = _tf32_tolerance(reference64, specs, seed, device, train, theirs)
        precision = f"float32 on {device} with TF32, 4x the reference's own TF32 error"
    else:
        rtol, precision = FLOAT32_RTOL, f"float32 on {device}"
    context = f"({mode} mode, {_args_text(mine_args)}, seed {seed}, {precision})"
    problem = _compare_outputs(mine, theirs, rtol, f"Your output {context}")
    if problem is not None:
        reference_modules = _dict(_walk(reference)) if _is_module(reference) else {}
        where = _locate(mine_records, theirs_records, owners, reference_modules, rtol, train)
        raise CheckError(problem + where)
    problem = _state_differences(pairs, rtol, train)
    if problem is not None:
        raise CheckError(problem)
    for i, (a, b, generated) in _enumerate(
        _zip(mine_args.values, theirs_args.values, mine_args.generated)
    ):
        if generated or _type(a) is not _Tensor or not _t_is_floating_point(a):
            continue
        mismatch = _compare(_fresh(a), _fresh(b), rtol)
        if mismatch is not None:
            raise CheckError(
                mismatch.report(f"After the call, argument {i + 1} {context}")
                + "\n  Hint: tensors passed in (such as running statistics) must be updated in "
                "place exactly as the reference updates them."
            )


# ----------------------------------------------------------------------------------------------
# Gradients.


def check_gradients(
    student: Callable[..., Any],
    reference: Callable[..., Any],
    inputs: Inputs,
    *,
    train: bool = True,
    match: str = "order",
    seed: int = 0,
    rtol: float = FLOAT64_RTOL,
) -> None:
    """Check gradients of the student's module against the reference's, in float64 on the CPU.

    Both are copied and cast to float64 on the CPU (so float32 rounding cannot hide or fake a
    difference), the reference's weights are loaded into the student's copy, both run on the same
    seeded float64 inputs (training mode by default, so gradients flow through batch statistics)
    and backpropagate ``sum(output * w)`` for a seeded random ``w``. The outputs, then the
    gradients of every input made from a shape, then of every parameter (paired as in
    :func:`transfer_weights`) must agree within ``rtol``.

    Args:
        student: the student's module or function.
        reference: the reference module or function.
        inputs: a shape, a tensor, or a list of shapes, tensors and plain arguments; only inputs
            given as shapes get gradients (tensors given are constants, such as running
            statistics).
        train: run in training mode (the default) or evaluation mode.
        match: how weights are paired: ``"order"`` or ``"name"``.
        seed: seed of the inputs, weights, output weighting and dropout.
        rtol: tolerance (:data:`FLOAT64_RTOL`).

    Raises:
        CheckError: naming the input or parameter (yours and the reference's name) whose gradient
            differs, with the largest difference and its position.
    """
    _verify_environment()
    specs = _input_specs(inputs)
    mode = "training" if train else "evaluation"
    given = reference
    student, reference, pairs = _prepare(
        student, reference, specs, seed=seed, device=_CPU, dtype=_float64, match=match
    )
    tracer = _guard(student, given, reference)
    seal = _Seal(reference)
    mine_args = _make_args(specs, seed, _CPU, _float64, grad=True)
    theirs_args = _make_args(specs, seed, _CPU, _float64, grad=True)
    what = f"Calling your module on float64 {_args_text(mine_args)} in {mode} mode"
    parameter_pairs = [(m, t) for m, t in pairs if _isinstance(m.tensor, _Parameter)]
    with _enable_grad():
        mine = _call(student, mine_args, seed, _CPU, train, tracer, what, [], {})
        _after_student(tracer, seal, what)
        theirs = _call(reference, theirs_args, seed, _CPU, train, None, "", [], {})
    _verify_environment()
    context = f"(float64, {mode} mode, {_args_text(mine_args)}, seed {seed})"
    problem = _compare_outputs(mine, theirs, rtol, f"Your output {context}")
    if problem is not None:
        raise CheckError(problem)
    generator = _Generator().manual_seed(seed + 104729)
    weights = [
        None if t is None else _randn(_tuple(_t_shape(t)), generator=generator, dtype=_float64)
        for t in theirs
    ]
    seal = _Seal(reference)  # again: its forward pass updated its running statistics
    mine_grads = _run_traced(
        lambda: _gradients(mine, weights, mine_args, [m.tensor for m, _ in parameter_pairs], what),
        tracer,
        f"{what}, backpropagating",
    )
    _after_student(tracer, seal, f"{what}, backpropagating")
    theirs_grads = _gradients(
        theirs, weights, theirs_args, [t.tensor for _, t in parameter_pairs], ""
    )
    labels = [f"input {i + 1}" for i, g in _enumerate(mine_args.generated) if g]
    labels += [
        f"your parameter `{m.name}` (the reference's `{t.name}`)" for m, t in parameter_pairs
    ]
    scales = [_rms(g) for g in theirs_grads if g is not None]
    floor = _GRADIENT_SCALE_FLOOR * _max(scales, default=0.0)
    for label, a, b in _zip(labels, mine_grads, theirs_grads):
        if a is None and b is None:
            continue
        if a is None or b is None:
            raise CheckError(
                f"The gradient of {label} {context} is "
                f"{'missing in yours' if a is None else 'missing in the reference'}: "
                + (
                    "is it used in your forward, with requires_grad=True and without .detach() "
                    "or torch.no_grad()?"
                    if a is None
                    else "your module makes it influence the output while the reference does not."
                )
            )
        mismatch = _compare(a, b, rtol, floor)
        if mismatch is not None:
            raise CheckError(
                mismatch.report(f"The gradient of {label} {context}")
                + "\n  Hint: the outputs agree, so the backward pass differs: a custom "
                "autograd.Function's backward, a .detach() or in-place operation, or statistics "
                "treated as constants."
            )


def _gradients(
    outputs: list[Tensor | None],
    weights: list[Tensor | None],
    args: _Args,
    parameters: list[Tensor],
    what: str,
) -> list[Tensor | None]:
    """Gradients of ``sum(output * w)`` for the generated inputs and the given parameters."""
    targets = [v for v, g in _zip(args.values, args.generated) if g] + parameters
    loss = None
    for output, weight in _zip(outputs, weights):
        if output is None or weight is None or not _t_requires_grad(output):
            continue
        term = _t_sum(_t_mul(output, weight))
        loss = term if loss is None else _t_add(loss, term)
    differentiable = [i for i, t in _enumerate(targets) if _t_requires_grad(t)]
    result: list[Tensor | None] = [None] * _len(targets)
    if loss is None or not differentiable:
        return result
    try:
        grads = _autograd_grad(loss, [targets[i] for i in differentiable], allow_unused=True)
    except Exception as error:
        if not what:
            raise
        raise CheckError(
            f"{what}: backpropagating through your module raised {_type(error).__name__}: {error}"
        ) from error
    for i, grad in _zip(differentiable, grads):
        if grad is not None:
            result[i] = _fresh(_genuine(grad, "A gradient"))
    return result


# ----------------------------------------------------------------------------------------------
# Own implementation.


def _origin(obj: object) -> str | None:
    """The reference name of ``obj`` if it is (or is defined by) convlab or another library."""
    name = _SNAPSHOT.reference_ids.get(_id(obj))
    if name is not None:
        return name
    if not (_isinstance(obj, _type) or _type(obj) is FunctionType):
        return None
    module = _getattr(obj, "__module__", None)
    qualname = _getattr(obj, "__qualname__", _getattr(obj, "__name__", "?"))
    if _type(module) is _str and _is_reference_module(module):
        return f"{module}.{qualname}"
    code = _getattr(obj, "__code__", None)
    if _type(code) is CodeType:
        return _reference_code_label(code)
    return None


def _is_reference_module(name: str) -> bool:
    return name == "convlab" or name.startswith(("convlab.", *_FOREIGN_MODULES))


@dataclass(frozen=True)
class _Policy:
    """What an exercise allows from convlab, and what it forbids from anywhere, by identity."""

    allowed_ids: frozenset[int]
    allowed_codes: frozenset[int]  # code of allowed objects: what runs inside them is allowed
    forbidden: dict[int, str]  # forbidden class, function or builtin -> its name
    forbidden_codes: dict[int, str]  # code of forbidden functions and classes -> a label
    forbidden_modules: frozenset[str]  # where forbidden objects live, to resolve `F.batch_norm`
    keep: tuple[object, ...]  # strong references, so that ids stay unique

    def name(self, obj: object) -> str | None:
        """Why ``obj`` is not the student's own: its reference or forbidden name, else None."""
        if _id(obj) in self.allowed_ids:
            return None
        return self.forbidden.get(_id(obj)) or _origin(obj)

    def class_problem(self, cls: type) -> str | None:
        for base in _mro_of(cls):
            if _id(base) in self.allowed_ids:
                return None
            name = self.name(base)
            if name is not None:
                return name
        return None


def _resolve(item: object, where: str) -> list[object]:
    """Objects named by an ``allowed`` or ``forbidden`` entry (an object or a dotted name)."""
    if _type(item) is not _str:
        return [item]
    if item in _SNAPSHOT.reference_by_name:
        return [_SNAPSHOT.reference_by_name[item]]
    found = [
        obj for name, obj in _dict_items(_SNAPSHOT.reference_by_name) if name.startswith(item + ".")
    ]
    module, _, attribute = item.rpartition(".")
    if not found and module in sys.modules and attribute in _vars(sys.modules[module]):
        found = [_vars(sys.modules[module])[attribute]]
    if not found:
        raise ValueError(f"{where}: {item!r} names no class, function or convlab module")
    return found


def _class_functions(cls: type) -> list[FunctionType]:
    """Functions defined by ``cls`` and its bases up to (not including) ``nn.Module``."""
    functions: list[FunctionType] = []
    for base in _mro_of(cls):
        if base is _Module or base is _object:
            break
        for value in _list(base.__dict__.values()):
            functions.extend(_functions_of(value))
    return functions


def _codes(obj: object) -> list[CodeType]:
    functions = _class_functions(obj) if _isinstance(obj, _type) else _functions_of(obj)
    return [code for function in functions for code in _code_objects(function.__code__)]


def _policy(allowed: Iterable[object], forbidden: Iterable[object]) -> _Policy:
    allow = [obj for item in allowed for obj in _resolve(item, "allowed")]
    forbid = [obj for item in forbidden for obj in _resolve(item, "forbidden")]
    names: dict[int, str] = {}
    codes: dict[int, str] = {}
    modules: set[str] = _set()
    for obj in forbid:
        module = _getattr(obj, "__module__", None) or "builtins"
        short = "__name__" if _type(obj) is _BUILTIN_FUNCTION else "__qualname__"
        name = f"{module}.{_getattr(obj, short, _repr(obj))}"
        names[_id(obj)] = name
        modules.add(module)
        for code in _codes(obj):
            codes[_id(code)] = f"{name} ({_getattr(code, 'co_qualname', code.co_name)})"
    return _Policy(
        allowed_ids=frozenset(_id(obj) for obj in allow),
        allowed_codes=frozenset(_id(code) for obj in allow for code in _codes(obj)),
        forbidden=names,
        forbidden_codes=codes,
        forbidden_modules=frozenset(modules),
        keep=(*allow, *forbid),
    )


def _names_used(code: CodeType) -> tuple[set[str], set[str]]:
    """Global names and attribute or import names the bytecode of ``code`` (nested too) uses."""
    global_names: set[str] = _set()
    attribute_names: set[str] = _set()
    for nested in _code_objects(code):
        for instruction in _get_instructions(nested):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME", "IMPORT_NAME"):
                global_names.add(_str(instruction.argval))
            elif instruction.opname in ("LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM"):
                attribute_names.add(_str(instruction.argval))
    return global_names, attribute_names


def _is_library_code(obj: object) -> bool:
    module = _getattr(obj, "__module__", None)
    return _type(module) is _str and (module == "torch" or module.startswith("torch."))


def _function_problems(function: FunctionType, owner: str, policy: _Policy) -> list[str]:
    """What a function of the student's refers to that is not the student's own.

    Follows the global names its bytecode loads (and attributes of convlab modules, or of the
    modules forbidden objects live in), its closure and its default arguments.
    """
    if _is_library_code(function):
        return []
    global_names, attribute_names = _names_used(function.__code__)
    namespace = function.__globals__
    found: list[tuple[str, object]] = []
    for name in _sorted(global_names):
        value = sys.modules.get(name) if "." in name else namespace.get(name)
        if value is None and name in sys.modules:
            value = sys.modules[name]
        if value is not None:
            found.append((name, value))
    for cell in function.__closure__ or ():
        try:
            found.append(("(a variable of an enclosing function)", cell.cell_contents))
        except ValueError:
            continue
    defaults = (*(function.__defaults__ or ()), *(function.__kwdefaults__ or {}).values())
    found.extend(("(a default argument)", value) for value in defaults)
    problems: list[str] = []
    modules_seen: set[int] = _set()
    while found:
        name, value = found.pop()
        if _isinstance(value, ModuleType):
            module_name = _getattr(value, "__name__", "")
            searched = _type(module_name) is _str and (
                _is_reference_module(module_name) or module_name in policy.forbidden_modules
            )
            if searched and _id(value) not in modules_seen:
                modules_seen.add(_id(value))
                members = _vars(value)
                for attribute in _sorted(attribute_names):
                    if attribute in members:
                        found.append((f"{name}.{attribute}", members[attribute]))
            continue
        reason = policy.name(value)
        if reason is None and _is_module(value):
            reason = policy.class_problem(_type(value))
        if reason is not None:
            problems.append(f"{owner} uses {reason} (through the name `{name}`)")
    return problems


def _static_problems(answer: object, policy: _Policy) -> list[str]:
    """Reasons ``answer`` is not the student's own work, found without running it."""
    if _id(answer) in policy.allowed_ids:
        return []
    reason = policy.name(answer)
    if reason is not None:
        kind = "class" if _isinstance(answer, _type) else "function"
        return [f"your answer is the {kind} {reason} itself, under another name (an alias)"]
    problems: list[str] = []
    classes_seen: set[int] = _set()
    modules_seen: set[int] = _set()

    def scan_class(cls: type, where: str) -> None:
        if _id(cls) in classes_seen:
            return
        classes_seen.add(_id(cls))
        reason = policy.class_problem(cls)
        if reason is not None:
            relation = "is" if policy.name(cls) is not None else "derives from"
            problems.append(f"{where} {relation} {reason}")
            return
        resolved: set[str] = _set()  # an attribute a subclass overrides never runs
        for base in _mro_of(cls):
            skip = _id(base) in policy.allowed_ids or _is_library_code(base) or base is _object
            for attribute, value in _list(_dict_items(_dict(base.__dict__))):
                if skip or attribute in resolved:
                    resolved.add(attribute)
                    continue
                resolved.add(attribute)
                for function in _functions_of(value):
                    owner = f"{base.__qualname__}.{attribute}"
                    problems.extend(_function_problems(function, owner, policy))

    def scan_value(value: object, path: str, depth: int) -> None:
        if depth > 3 or _id(value) in policy.allowed_ids:
            return
        reason = policy.name(value)
        if reason is not None:
            problems.append(f"your module's `{path}` is {reason}")
        elif _is_module(value):
            scan_module(value, path)
        elif _type(value) is FunctionType:
            problems.extend(_function_problems(value, f"your module's `{path}`", policy))
        elif _type(value) is MethodType:
            scan_value(value.__func__, path, depth + 1)
        elif _type(value) in (_list, _tuple):
            for i, item in _enumerate(value):
                scan_value(item, f"{path}[{i}]", depth + 1)
        elif _type(value) is _dict:
            for key, item in _list(_dict_items(value)):
                scan_value(item, f"{path}[{key!r}]", depth + 1)

    def scan_module(root: nn.Module, prefix: str) -> None:
        for subpath, module in _walk(root):
            if _id(module) in modules_seen:
                continue
            modules_seen.add(_id(module))
            path = ".".join(part for part in (prefix, subpath) if part)
            where = f"your module's `{path}`" if path else "your module"
            cls = _type(module)
            if _id(cls) in policy.allowed_ids:
                continue
            before = _len(problems)
            scan_class(cls, f"{where} ({cls.__qualname__})")
            if _len(problems) > before:
                continue
            for key, value in _list(_dict_items(_get_attribute(module, "__dict__"))):
                if key in ("_parameters", "_buffers", "_modules") or key.endswith("hooks"):
                    continue
                if _is_module(value) or _isinstance(value, _type):
                    scan_value(value, f"{path}.{key}" if path else key, 1)
                elif _type(value) in (FunctionType, MethodType, _list, _tuple, _dict):
                    scan_value(value, f"{path}.{key}" if path else key, 1)

    if _is_module(answer):
        scan_module(answer, "")
    elif _isinstance(answer, _type):
        scan_class(answer, f"your class {answer.__qualname__}")
    elif _type(answer) is FunctionType:
        problems.extend(_function_problems(answer, f"your function {answer.__qualname__}", policy))
    return problems


def check_own_implementation(
    answer: object,
    *,
    allowed: Iterable[object] = (),
    forbidden: Iterable[object] = (),
    inputs: Inputs | None = None,
    probe: Callable[[], Any] | None = None,
) -> None:
    """Check that an answer is the student's own code, not convlab's (or torchvision's) reference.

    Judged by where things come from, not by source text: the answer (class, function, module
    instance) must not be a convlab class or function (an alias), no class in its MRO may be one
    (a subclass), no submodule or attribute of a module answer may be one (a wrapper), and no
    function of the student's classes may refer to one. With ``inputs`` (module answers) or
    ``probe`` (anything: ``lambda: my_vgg_block(2, 3, 8)``), the code also runs under a profile
    hook, and any call into convlab's reference code fails the check. Classes of
    ``torchvision.models``, ``torchvision.ops`` and ``timm`` count as references too; ``torch``
    and ``torch.nn`` are allowed unless ``forbidden`` names them (a batch-norm-from-scratch lab
    forbids ``nn.BatchNorm2d``, ``F.batch_norm`` and ``torch.batch_norm``).

    Args:
        answer: the student's class, function or module instance.
        allowed: convlab objects (or their qualified names, ``"convlab.layers.ConvBNAct"``, or
            module names, ``"convlab.layers"``) the lab allows; what they call is allowed too.
        forbidden: other classes and functions (objects or dotted names) the answer must not use,
            directly, through a subclass, or by calling them while it runs.
        inputs: for a module answer, inputs (as for :func:`check_same_function`) to run it on.
        probe: a function that exercises the answer.

    Raises:
        CheckError: saying "No credit" and what was found (an alias, the reference class in the
            MRO, the submodule that is a reference, the function that refers to one, or the
            reference code that ran).
    """
    _verify_environment()
    policy = _policy(allowed, forbidden)
    problems = _static_problems(answer, policy)
    runs: list[tuple[Callable[[], Any], str]] = []
    if inputs is not None:
        if not _is_module(answer):
            raise TypeError("inputs needs a module answer; use probe for classes and functions")
        specs = _input_specs(inputs)
        args = _make_args(specs, 0, _device_of(answer, specs), _float32, grad=False)
        runs.append((lambda: answer(*args.values), f"Calling your module on {_args_text(args)}"))
    if probe is not None:
        runs.append((probe, "Running your answer"))
    for run, what in runs:
        if problems:
            break
        tracer = _Tracer(policy)
        with _no_grad():
            result = _run_traced(run, tracer, what)
        problems.extend(f"running it called {hit}" for hit in tracer.hits)
        if not problems and _is_module(result):
            problems.extend(_static_problems(result, policy))
    _verify_environment()
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems[:5])
        allowed_names = _sorted(
            _SNAPSHOT.reference_ids.get(_id(obj), _describe(obj))
            for obj in policy.keep
            if _id(obj) in policy.allowed_ids
        )
        permitted = ", and " + ", ".join(allowed_names) if allowed_names else ""
        raise CheckError(
            "No credit: this answer uses a reference implementation instead of your own code.\n"
            f"{listing}\n  Write it yourself; this exercise allows torch and torch.nn"
            f"{' (except what it names above)' if policy.forbidden else ''}{permitted}."
        )


_OWN_NAMES = {key: value for key, value in globals().items() if not key.startswith("__")}
