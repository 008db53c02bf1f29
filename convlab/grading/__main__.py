"""``python -m convlab.grading``: the grading command (the same as ``python -m convlab.grade``).

The grading kernelspec starts its kernels as ``python -m convlab.grading kernel ...``.
"""

import sys

from convlab.grading.cli import main

__all__: list[str] = []

sys.exit(main())
