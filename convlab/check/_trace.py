"""Running the student's code: errors become messages, reference calls are caught.

The student's code runs before the reference's (no reference output exists yet to be found),
under a profile hook (:class:`_Tracer`) that catches calls to the reference passed to the
checker and to the code of the convlab classes it is built from, and, for the own-work check,
any call into reference code. The private reference is sealed (:class:`_Seal`): its layers,
attributes and weights are verified after the student's code ran.
"""

from __future__ import annotations

from collections.abc import Callable
from types import FunctionType
from typing import TYPE_CHECKING, Any

from convlab.check._compare import _compare
from convlab.check._guard import _verify_environment
from convlab.check._messages import CheckError, _describe
from convlab.check._modules import _entries, _is_module, _walk
from convlab.check._originals import (
    _dict,
    _dict_items,
    _get_attribute,
    _getattr,
    _getprofile,
    _id,
    _len,
    _list,
    _mro_of,
    _set,
    _setprofile,
    _type,
)
from convlab.check._registry import _code_objects, _functions_of, _origin, _reference_code_label
from convlab.check._tensors import _fresh

if TYPE_CHECKING:
    from convlab.check.own_work import _Policy

__all__: list[str] = []  # private to convlab.check


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
            label = self.policy.forbidden_codes.get(_id(code)) or _reference_code_label(
                code, frame.f_globals
            )
        if label is not None:
            self.hits.append(label)


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


def _reference_guard(student: object, given: object, reference: object) -> _Tracer:
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


def _after_student(tracer: _Tracer, seal: _Seal, what: str) -> None:
    """After the student's code ran: nothing it must not call, nothing it must not touch."""
    if tracer.hits:
        raise CheckError(
            f"{what}: your code called {tracer.hits[0]}; it must compute the result itself."
        )
    _verify_environment()
    seal.verify(what)
