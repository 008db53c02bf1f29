"""What counts as reference code: the registry behind the own-work check and the tracer.

An answer gets no credit when it is, derives from, wraps, refers to or, while it runs, calls
reference code. Reference code is what belongs to a *registered module*, decided by identity and
by module name, never by the file the source lies in:

* every class and function found in the module's namespace when it is registered, and every code
  object of their methods and nested functions (identities collected at registration);
* any other class whose ``__module__`` names a registered module, and any other function or
  running code whose globals are a registered module's namespace (a lambda in a table, a class
  made by a factory), so code keeps its verdict when it moves between files.

Code of torchvision's models and blocks (``torchvision.models``, ``torchvision.ops``) and of timm
counts too, recognised by module name and, for running code, by file.

convlab.check registers the library itself when it is imported: ``convlab`` and every module
under it (:data:`_LIBRARY`: ``convlab.layers``, ``convlab.models`` and each model family,
``convlab.summary``, ``convlab.train``, ``convlab.data``, ``convlab.loader``, ``convlab.recipes``,
``convlab.viz``, ``convlab.bench``, and modules added later), except the parts that are no
answer to anything (:data:`_NOT_LIBRARY`): convlab.check itself, the grader (``convlab.grading``,
``convlab.grade``, ``convlab.autograde``), the command line (``convlab.__main__``),
``convlab.device`` (it only places tensors, and keeps ``.cuda()`` on the CPU while grading) and
``convlab.labs``, which registers its own reference modules, each lab's, with
:func:`register_reference` when it is imported (its session and recording machinery is no
reference). Library modules not imported yet are registered as soon as they are (looked for at
the start of every check, and when running code's globals are such a module's).

Registration only adds. Nothing removes an entry, a module registered twice only adds what it
defined since, and an object keeps the name it was first registered under; each check verifies
that no entry went missing. (Registering one's own code only takes one's own credit away.)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from types import CodeType, FunctionType, ModuleType

import convlab
import convlab.layers
import convlab.models  # imports every model family, so that they are registered at import
from convlab.check._originals import (
    _any,
    _dict,
    _dict_get,
    _dict_items,
    _getattr,
    _id,
    _isinstance,
    _len,
    _list,
    _set,
    _str,
    _tuple,
    _type,
    _zip,
)

__all__ = ["register_reference"]

# The library, whose code is reference code: convlab and every module under it, except these
# (and the modules under them), which answer nothing. convlab.labs registers its lab modules.
_LIBRARY = "convlab"
_NOT_LIBRARY = (
    "convlab.check",
    "convlab.labs",
    "convlab.grading",
    "convlab.grade",
    "convlab.autograde",
    "convlab.__main__",
    "convlab.device",
)
# Someone else's answers too: torchvision's models and blocks, timm. Matched on the module of a
# class or function and on the file of running code.
_FOREIGN_MODULES = ("torchvision.models", "torchvision.ops", "timm")
_FOREIGN_PATHS = tuple(
    os.sep + part.replace(".", os.sep) + os.sep
    for part in ("torchvision.models", "torchvision.ops", "timm")
)
# Where a label shows convlab's files from (a display only: the verdict never reads a path).
_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(convlab.__file__))) + os.sep


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


class _Registry:
    """Reference classes, functions, code objects and module namespaces, added to only."""

    def __init__(self, package: str, excluded: tuple[str, ...]) -> None:
        self.ids: dict[int, str] = {}  # class or function -> qualified name
        self.by_name: dict[str, object] = {}  # qualified name -> the first object so named
        self.codes: dict[int, str] = {}  # code object of reference code -> label
        self.namespaces: dict[int, str] = {}  # a registered module's __dict__ -> module name
        self.names: set[str] = {package}  # registered module names, imported or not
        self.package = package + "."  # ... and every module under this package
        self.excluded = excluded  # ... but these and the modules under them
        self.keep: list[object] = []  # strong references, so that ids stay unique
        self.sizes = self._sizes()

    def _sizes(self) -> tuple[int, ...]:
        return (
            _len(self.ids),
            _len(self.by_name),
            _len(self.codes),
            _len(self.namespaces),
            _len(self.names),
        )

    def intact(self) -> bool:
        """Whether every entry ever added is still there (the containers only grow)."""
        return self._sizes() == self.sizes

    def declared(self, name: str) -> bool:
        """Whether ``name`` is a registered module's name (the module imported or not)."""
        if name in self.names:
            return True
        if not name.startswith(self.package):
            return False
        return not _any(name == part or name.startswith(part + ".") for part in self.excluded)

    def holds_registered(self, name: str) -> bool:
        """Whether module ``name`` is registered or is a package above a registered module."""
        prefix = name + "."
        return self.declared(name) or _any(
            other.startswith(prefix) for other in (*self.names, self.package)
        )

    def add_module(self, module: ModuleType) -> None:
        name = _getattr(module, "__name__", None)
        namespace = _getattr(module, "__dict__", None)
        if _type(name) is not _str or not _isinstance(namespace, _dict):
            raise TypeError(f"register_reference needs modules or module names, got {module!r}")
        before = self._sizes()
        self.names.add(name)
        if _id(namespace) not in self.namespaces:
            self.namespaces[_id(namespace)] = name
            self.keep.append(namespace)
        seen: set[int] = _set()
        for value in _list(namespace.values()):
            self._add_definitions(value, name, namespace, seen)
        self._grown(before)

    def _grown(self, before: tuple[int, ...]) -> None:
        """Count what was just added (from the sizes ``before``), never re-reading the total."""
        after = self._sizes()
        self.sizes = _tuple(s + a - b for s, a, b in _zip(self.sizes, after, before))

    def _add_definitions(
        self, value: object, name: str, namespace: dict[str, object], seen: set[int]
    ) -> None:
        """``value`` and the classes nested in it, where defined in module ``name``."""
        if _id(value) in seen:
            return
        seen.add(_id(value))
        module = _getattr(value, "__module__", None)
        if _isinstance(value, _type) and module == name:
            self._add(f"{name}.{value.__qualname__}", value)
            for member in _list(value.__dict__.values()):
                if _isinstance(member, _type):
                    self._add_definitions(member, name, namespace, seen)
        elif _type(value) is FunctionType and (module == name or value.__globals__ is namespace):
            self._add(f"{module}.{value.__qualname__}", value)

    def _add(self, qualified: str, obj: object) -> None:
        if _id(obj) in self.ids:
            return
        self.ids[_id(obj)] = qualified
        if qualified not in self.by_name:
            self.by_name[qualified] = obj
        self.keep.append(obj)
        functions = _functions_of(obj)
        if _isinstance(obj, _type):
            functions = [f for value in obj.__dict__.values() for f in _functions_of(value)]
        for function in functions:
            for code in _code_objects(function.__code__):
                if _id(code) not in self.codes:
                    self.codes[_id(code)] = f"{qualified} ({function.__qualname__})"
                    self.keep.append(code)

    def refresh(self) -> None:
        """Register the declared modules imported since (those whose import has finished)."""
        for name, module in _list(_dict_items(sys.modules)):
            if _type(name) is not _str or not self.declared(name):
                continue
            namespace = _getattr(module, "__dict__", None)
            if not _isinstance(module, ModuleType) or _id(namespace) in self.namespaces:
                continue
            if _getattr(_getattr(module, "__spec__", None), "_initializing", False):
                continue  # still running its own code: registered at the next refresh
            self.add_module(module)

    def module_of(self, namespace: object) -> str | None:
        """The registered module whose namespace ``namespace`` is (the globals of its code)."""
        name = self.namespaces.get(_id(namespace))
        if name is not None or not _isinstance(namespace, _dict):
            return name
        name = _dict_get(namespace, "__name__")  # a declared module imported since the last check
        if _type(name) is not _str or not self.declared(name):
            return None
        module = sys.modules.get(name)
        if _getattr(module, "__dict__", None) is not namespace:
            return None
        self.add_module(module)  # type: ignore[arg-type]
        return name


_REGISTRY = _Registry(_LIBRARY, _NOT_LIBRARY)
_REGISTRY.refresh()  # the library's modules imported so far, before any student code runs


def register_reference(*modules: ModuleType | str) -> None:
    """Make the code of ``modules`` reference code, which answers may not use as their own.

    :func:`check_own_implementation` then refuses an answer that is, derives from, wraps or
    refers to a class or function of these modules, or that calls their code while it runs.
    What counts is membership of the module, not the file: every class and function the module
    defines, their methods and nested functions, and any other code whose globals are the
    module's namespace. The library's modules are registered by convlab.check itself; a package
    of exercises registers its reference solutions when it is imported, as ``convlab.labs``
    does::

        from convlab.check import register_reference
        from convlab.labs import lab1_vgg, lab2_nin

        register_reference(lab1_vgg, lab2_nin)

    Registration only adds: nothing can be unregistered, registering a module again only adds
    what it defined since, and a module named before it is imported is registered once it is.

    Args:
        modules: modules, or the names of modules (``"convlab.labs.lab1_vgg"``), registered as
            soon as they are imported.

    Raises:
        TypeError: for anything other than a module or a module's name.
    """
    for module in modules:
        if _type(module) is _str:
            before = _REGISTRY._sizes()
            _REGISTRY.names.add(module)
            _REGISTRY._grown(before)
        elif _isinstance(module, ModuleType):
            _REGISTRY.add_module(module)
        else:
            raise TypeError(
                f"register_reference needs modules or module names, got {_type(module).__name__}"
            )
    _REGISTRY.refresh()


def _is_reference_module(name: str) -> bool:
    return _REGISTRY.declared(name) or name.startswith(_FOREIGN_MODULES)


def _leads_to_reference(name: str) -> bool:
    """Whether the attributes of module ``name`` may be reference code (a registered package)."""
    return _REGISTRY.holds_registered(name) or name.startswith(_FOREIGN_MODULES)


def _where(code: CodeType) -> str:
    filename = os.path.abspath(code.co_filename)
    if filename.startswith(_SOURCE_ROOT):
        filename = os.path.relpath(filename, _SOURCE_ROOT)
    return f"{filename}:{code.co_firstlineno}"


def _reference_code_label(code: CodeType, namespace: object = None) -> str | None:
    """Whose reference ``code`` (run with globals ``namespace``) is, or None for anyone's own."""
    label = _REGISTRY.codes.get(_id(code))
    if label is not None:
        return label
    name = _getattr(code, "co_qualname", code.co_name)
    if namespace is not None and _REGISTRY.module_of(namespace) is not None:
        return f"{name} ({_where(code)})"
    filename = os.path.abspath(code.co_filename)
    if _any(part in filename for part in _FOREIGN_PATHS):
        return f"{name} ({filename}:{code.co_firstlineno})"
    return None


def _origin(obj: object) -> str | None:
    """The reference name of ``obj`` if it is (or is defined by) reference code."""
    name = _REGISTRY.ids.get(_id(obj))
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
        return _reference_code_label(code, _getattr(obj, "__globals__", None))
    return None
