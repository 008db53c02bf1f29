"""Private copies, taken when convlab.check is imported, of everything the checks rely on.

Builtins (``type``, ``isinstance``, ``len``, ``abs``, ...), torch functions, and ``Tensor``
methods taken as unbound C methods of ``torch._C.TensorBase`` (an immutable type), so replacing
``torch.allclose``, ``torch.Tensor.__eq__`` or ``builtins.abs`` later changes nothing in the
checks. A builtin or torch function that is already not the genuine one at import is noted in
:data:`_PRE_IMPORT_PROBLEMS`, and every check then refuses to run. A torch internal that this
version of torch lacks is noted in :data:`_MISSING_INTERNALS` and replaced by a stand-in that
raises :func:`_cannot_run`'s one-line error, so that importing the package never fails and every
check says why it cannot run. This module is imported first of the package: nothing else of it
runs before these copies exist.
"""

from __future__ import annotations

import ast
import builtins
import copy
import inspect
import math
import platform
import symtable
import sys
import textwrap
from typing import Any

import torch
from torch import nn

__all__: list[str] = []  # private to convlab.check

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
_dict_get = _dict.get
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
_ast_parse = ast.parse
_ast_walk = ast.walk
_AST_NAME = ast.Name
_AST_ATTRIBUTE = ast.Attribute
_AST_IMPORT = ast.Import
_AST_IMPORT_FROM = ast.ImportFrom
_getsource = inspect.getsource
_symtable = symtable.symtable
_dedent = textwrap.dedent

# Torch internals (not public API) that a torch release may rename or drop: each missing one is
# noted here, with the versions, and every check then refuses to run with a one-line reason.
_MISSING_INTERNALS: list[str] = []
_ABSENT = object()


def _versions() -> str:
    return f"torch {torch.__version__}, Python {platform.python_version()}"


def _cannot_run_message() -> str:
    names = ", ".join(_MISSING_INTERNALS)
    return (
        f"The checks cannot run with {_versions()}: this torch lacks {names}, which they rely "
        "on. Tell your instructor, or install a torch that convlab supports (its README's "
        "Supported versions)."
    )


def _cannot_run(*args: object, **kwargs: object) -> Any:
    from convlab.check._messages import _CannotRun  # imported late: _messages imports this

    raise _CannotRun(_cannot_run_message())


def _internal(path: str, kind: str = "function") -> Any:
    """``torch.<path>``, or a stand-in that refuses to work when this torch lacks it."""
    value: Any = torch
    for part in path.split(".")[1:]:
        value = getattr(value, part, _ABSENT)
        if value is _ABSENT:
            _MISSING_INTERNALS.append(path)
            if kind == "class":  # isinstance() against it is False; making one refuses
                return _type(path.rpartition(".")[2], (), {"__init__": _cannot_run})
            return _cannot_run
    return value


_TensorBase = _internal("torch._C.TensorBase", "class")
_Tensor = torch.Tensor
_Parameter = nn.Parameter
_Module = nn.Module
_Uninitialized = _internal("torch.nn.parameter.UninitializedTensorMixin", "class")
_BatchNorm = _internal("torch.nn.modules.batchnorm._BatchNorm", "class")
_ConvNd = _internal("torch.nn.modules.conv._ConvNd", "class")
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
_DisableTorchFunctionSubclass = _internal("torch._C.DisableTorchFunctionSubclass", "class")
_len_torch_function_stack = _internal("torch._C._len_torch_function_stack")
_len_torch_dispatch_stack = _internal("torch._C._len_torch_dispatch_stack")
_register_forward_hook = _Module.register_forward_hook
_register_forward_pre_hook = _Module.register_forward_pre_hook
_module_to = _Module.to


def _tensor_method(name: str) -> Any:
    """A C method of ``torch._C.TensorBase`` (an immutable type: it cannot be replaced)."""
    method = _TensorBase.__dict__.get(name, _ABSENT)
    if method is _ABSENT:
        _MISSING_INTERNALS.append(f"torch._C.TensorBase.{name}")
        return _cannot_run
    return method


def _tensor_property(name: str) -> Any:
    """The getter of a property of ``torch._C.TensorBase`` (``shape``, ``dtype`` ...)."""
    prop = _tensor_method(name)
    return _cannot_run if prop is _cannot_run else prop.__get__


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
_t_shape = _tensor_property("shape")
_t_dtype = _tensor_property("dtype")
_t_device = _tensor_property("device")
_t_requires_grad = _tensor_property("requires_grad")
_t_is_nested = _tensor_property("is_nested")
_t_layout = _tensor_property("layout")
_strided = torch.strided
