"""``python -m convlab.autograde``: nbgrader autograde with capped output, kept where it was.

The module is :mod:`convlab.grading.autograde` (the grader runs that one); this name stays for
anyone who typed it. Instructors only: the students' copy of the course leaves it out.
"""

from convlab.grading.autograde import CappedExecute, main, peak_mb

__all__ = ["CappedExecute", "main", "peak_mb"]

if __name__ == "__main__":
    main()
