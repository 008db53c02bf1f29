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

Weights. The reference's constant tensors (batch norm's ``gamma = 1``, ``beta = 0``, zero
biases) are randomized, then its weights are loaded into a copy of the student's module, by shape
in registration order or by name (:func:`transfer_weights`, :mod:`convlab.check.weights`). The
caller's modules are left as they were.

Tolerance. Outputs agree when ``|yours - reference| <= rtol * (|reference| + scale)``, ``scale``
being the reference's RMS, with ``rtol`` :data:`FLOAT32_RTOL` ``= 1e-4`` in float32, four times
the reference's measured error within [:data:`TF32_RTOL_MIN`, :data:`TF32_RTOL_MAX`] with TF32
on CUDA, and :data:`FLOAT64_RTOL` ``= 1e-7`` for gradients in float64; the measurements behind
these figures are in :mod:`convlab.check._compare`.

Reference code. What an answer may not use as its own is what belongs to a module registered
with :func:`register_reference`: convlab.check registers the library (``convlab`` and every
module under it but the checkers, the labs, the grader, the command line and ``convlab.device``),
``convlab.labs`` registers each lab's module; torchvision's models and timm count too
(:mod:`convlab.check._registry`).

Tamper resistance. Everything the checks rely on is captured when this package is imported
(:mod:`convlab.check._originals`); each check verifies that what the reference computes with is
unchanged and refuses to grade otherwise (:mod:`convlab.check._guard`); the student's code runs
first, traced, with the reference sealed (:mod:`convlab.check._trace`). Code that runs in the
same Python process can in the end rewrite anything, this package included; these measures close
the easy ways and make the hard ones deliberate.

Modules: :mod:`~convlab.check.shapes` (:func:`check_output_shape`),
:mod:`~convlab.check.parameters` (:func:`count_parameters`, :func:`check_parameter_count`),
:mod:`~convlab.check.weights` (:func:`transfer_weights`), :mod:`~convlab.check.function`
(:func:`check_same_function`), :mod:`~convlab.check.gradients` (:func:`check_gradients`),
:mod:`~convlab.check.own_work` (:func:`check_own_implementation`); private: ``_originals``,
``_messages``, ``_registry``, ``_guard``, ``_modules``, ``_tensors``, ``_compare``, ``_trace``.
"""

# Everything below runs while this package is imported, before any student code can: every
# module imports _originals (the private copies) before it does anything, _registry registers the
# library's modules imported so far, _guard takes the snapshot, and the last line notes the globals
# of every module of the package.
from convlab.check import _guard
from convlab.check._compare import FLOAT32_RTOL, FLOAT64_RTOL, TF32_RTOL_MAX, TF32_RTOL_MIN
from convlab.check._messages import CheckError
from convlab.check._registry import register_reference
from convlab.check.function import check_same_function
from convlab.check.gradients import check_gradients
from convlab.check.own_work import check_own_implementation
from convlab.check.parameters import check_parameter_count, count_parameters
from convlab.check.shapes import check_output_shape
from convlab.check.weights import transfer_weights

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
    "register_reference",
    "transfer_weights",
]

_guard._capture_package()  # last: the globals of every module of the package, as imported
