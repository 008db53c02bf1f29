"""Whose work it is: :func:`check_own_implementation`, by static analysis and by tracing.

An answer gets no credit when it is, derives from, wraps, refers to or, while it runs, calls
reference code (:mod:`convlab.check._registry` says what that is) or what the exercise forbids.
The static part reads the answer's classes, attributes, and the global names, closures and
default arguments its functions use (their code objects' names, classified by their source); the dynamic part runs it under the tracer of
:mod:`convlab.check._trace`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import CodeType, FunctionType, MethodType, ModuleType
from typing import Any

from torch import nn

from convlab.check._guard import _verify_environment
from convlab.check._messages import CheckError, _describe
from convlab.check._modules import _device_of, _is_module, _walk
from convlab.check._originals import (
    _AST_ATTRIBUTE,
    _AST_IMPORT,
    _AST_IMPORT_FROM,
    _BUILTIN_FUNCTION,
    _ast_parse,
    _ast_walk,
    _dedent,
    _dict,
    _dict_items,
    _enumerate,
    _float32,
    _get_attribute,
    _getattr,
    _getsource,
    _id,
    _isinstance,
    _len,
    _list,
    _Module,
    _mro_of,
    _no_grad,
    _object,
    _repr,
    _set,
    _sorted,
    _str,
    _symtable,
    _tuple,
    _type,
    _vars,
)
from convlab.check._registry import (
    _REGISTRY,
    _code_objects,
    _functions_of,
    _leads_to_reference,
    _origin,
)
from convlab.check._tensors import Inputs, _args_text, _input_specs, _make_args
from convlab.check._trace import _run_traced, _Tracer

__all__ = ["check_own_implementation"]


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
    if item in _REGISTRY.by_name:
        return [_REGISTRY.by_name[item]]
    found = [obj for name, obj in _dict_items(_REGISTRY.by_name) if name.startswith(item + ".")]
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


def _source_names(function: FunctionType) -> tuple[set[str], set[str]] | None:
    """Names that ``function``'s source reads as globals and as attributes.

    Globals are the names Python's symbol table (``symtable``) resolves as global in the
    function or in any function, class or comprehension inside it, and the modules it imports;
    attributes are ``ast.Attribute`` names, the names ``from m import n`` takes, and the parts of
    a dotted ``import``. None when the source cannot be found or parsed (code made by ``exec``,
    a lambda inside an expression).
    """
    try:
        source = _dedent(_getsource(function))
        tree = _ast_parse(source)
        table = _symtable(source, "<answer>", "exec")
    except (OSError, TypeError, SyntaxError, ValueError):
        return None
    global_names: set[str] = _set()
    attributes: set[str] = _set()
    tables = _list(table.get_children())  # the module level itself is not the function's code
    while tables:
        scope = tables.pop()
        global_names.update(
            symbol.get_name() for symbol in scope.get_symbols() if symbol.is_global()
        )
        tables.extend(scope.get_children())
    for node in _ast_walk(tree):
        if _isinstance(node, _AST_ATTRIBUTE):
            attributes.add(node.attr)
        elif _isinstance(node, _AST_IMPORT):
            for alias in node.names:
                global_names.add(alias.name)
                attributes.update(alias.name.split("."))
        elif _isinstance(node, _AST_IMPORT_FROM):
            global_names.add(node.module or "")
            attributes.update(alias.name for alias in node.names)
    return global_names, attributes


def _names_used(function: FunctionType) -> tuple[set[str], set[str]]:
    """Global names and attribute or import names ``function`` (nested code too) uses.

    What a code object looks up by name is ``co_names``, the same on every Python (no opcode is
    read: they change between versions, ``LOAD_METHOD`` and ``LOAD_SUPER_ATTR`` among them). The
    source, read with ``symtable`` and ``ast``, says which of those names are globals and which
    attributes (a local variable that shares an attribute's name is neither).
    A name the source does not account for (source edited since, or not found) counts as both,
    so that a missing or altered source can only make the check stricter, never blind.
    """
    names: set[str] = _set()
    for nested in _code_objects(function.__code__):
        names.update(_str(name) for name in nested.co_names)
    parsed = _source_names(function)
    if parsed is None:
        return names, _set(names)
    globals_read, attributes = parsed
    unexplained = {name for name in names if name not in globals_read and name not in attributes}
    global_names = {name for name in names if name in globals_read} | unexplained
    attribute_names = {name for name in names if name in attributes} | unexplained
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
    global_names, attribute_names = _names_used(function)
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
                _leads_to_reference(module_name) or module_name in policy.forbidden_modules
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

    Judged by where things come from, not by source text. Reference code is what belongs to a
    module registered with :func:`~convlab.check.register_reference` (convlab's library modules,
    registered by convlab.check itself, and each lab's reference pieces, registered by
    convlab.labs), whatever file it lies in. The answer (class, function, module instance) must
    not be a reference class or function (an alias), no class in its MRO may be one (a
    subclass), no submodule or attribute of a module answer may be one (a wrapper), and no
    function of the student's classes may refer to one. With ``inputs`` (module answers) or
    ``probe`` (anything: ``lambda: my_vgg_block(2, 3, 8)``), the code also runs under a profile
    hook, and any call into reference code fails the check. Classes of
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
            _REGISTRY.ids.get(_id(obj), _describe(obj))
            for obj in policy.keep
            if _id(obj) in policy.allowed_ids
        )
        permitted = ", and " + ", ".join(allowed_names) if allowed_names else ""
        raise CheckError(
            "No credit: this answer uses a reference implementation instead of your own code.\n"
            f"{listing}\n  Write it yourself; this exercise allows torch and torch.nn"
            f"{' (except what it names above)' if policy.forbidden else ''}{permitted}."
        )
