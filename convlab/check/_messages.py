""":class:`CheckError`, and the formatting every checker's message shares."""

from __future__ import annotations

from collections.abc import Sequence

from convlab.check._originals import _getattr, _int, _isinstance, _len, _str, _type

__all__ = ["CheckError"]


class CheckError(AssertionError):
    """An answer is wrong; the message says what differs, where, by how much, and what to try.

    It derives from ``AssertionError`` so that nbgrader and pytest report it as a failed test.
    """


CheckError.__module__ = "convlab.check"  # where students import it from, and tracebacks name it


class _CannotRun(CheckError):
    """The checks cannot run with this torch or Python: the message names what is missing.

    The cause is the set-up, not the student's code, so a notebook shows the message alone, one
    line, without the traceback through convlab's internals (IPython's ``_render_traceback_``).
    """

    def _render_traceback_(self) -> list[str]:
        return [f"CheckError: {self}"]


_CannotRun.__module__ = "convlab.check"


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
