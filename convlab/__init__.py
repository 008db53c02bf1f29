"""convlab: modern convolutional network architectures, for reading, checking and training.

The library behind the convlab course: every architecture of the course in
:mod:`convlab.models` (``create(name)``, ``names()``), shared blocks in :mod:`convlab.layers`,
and :func:`summary`, a layer-by-layer account of shapes, parameters, memory and
multiply-accumulates.
"""

from convlab import layers, models
from convlab.models import create, names
from convlab.summary import LayerRow, Summary, summary

__version__ = "0.1.0"

__all__ = ["LayerRow", "Summary", "__version__", "create", "layers", "models", "names", "summary"]
