"""``python -m convlab.grade <lab>``: the grading command, kept where users type it.

The grader lives in :mod:`convlab.grading` (one module per part); this module re-exports its
public names, so ``from convlab import grade`` and ``grade.grade(...)`` work as before, and runs
its command line. Instructors only: the students' copy of the course leaves it out.
"""

import sys

from convlab import grading
from convlab.grading import *  # noqa: F403 (the grader's public names, as they stand there)
from convlab.grading import main

__all__ = list(grading.__all__)  # one list, the package's: a name added there is here too

if __name__ == "__main__":
    sys.exit(main())
