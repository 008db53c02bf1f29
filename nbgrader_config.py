"""nbgrader configuration of the course: run nbgrader commands from this folder.

solutions/<lab>/   the instructors' notebooks (solutions, public and hidden tests)
labs/<lab>/        what students receive (`nbgrader generate_assignment <lab>` writes it)
submitted/, autograded/, feedback/, gradebook.db   made while grading; never committed
"""

import atexit
import os
import shutil
import tempfile

c = get_config()  # noqa: F821 (nbgrader provides get_config when it reads this file)

c.CourseDirectory.course_id = "convlab"
c.CourseDirectory.root = "."
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "labs"
# autograde copies every file of solutions/<lab>/ over the student's submission, so no
# checkpoint may live there: the instructors' reference checkpoints are in checkpoints/<lab>/.

# A student who deleted or moved a graded cell gets it back, so the tests still run.
c.OverwriteCells.add_missing_cells = True

# Grading runs on CPU: a lab's heaviest cell (evaluating the submitted weights on the held-out
# test split) takes well under a minute on two cores; five minutes leaves room for slow machines.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True

# Kernels talk to nbgrader over unix sockets in a private folder of this nbgrader process, not
# over TCP ports: a port is picked free, released, then bound by the kernel, and another process
# starting a kernel in between can take it (the kernel dies with "Address already in use").
# `python -m convlab.grade` sets its own, per submission.
_sockets = tempfile.mkdtemp(prefix="nbgrader-")  # mode 700; a short path, as sockets need
atexit.register(shutil.rmtree, _sockets, ignore_errors=True)
c.KernelManager.transport = "ipc"
c.KernelManager.ip = os.path.join(_sockets, "kernel")

# Warnings that PyTorch prints on stderr (a deprecation, a CPU-only notice) never cost points:
# nbgrader scores a test cell with stderr output as failed unless the output is removed first.
c.IgnorePattern.pattern = r"(?m)^\S.*:\d+: \w*Warning: "
c.IgnorePattern.enabled = True

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Hand-ins through a learning-management system (`nbgrader zip_collect <lab>`): put the LMS's
# "download all submissions" zip file(s) in downloaded/<lab>/archive/. Files are named as
# Canvas names them, <student>_[LATE_]<user id>_<file id>_<file name>, where a resubmission's
# file name gets a -1, -2... suffix; the student id is the first field. A student hands in
# either the archive that lab.hand_in() writes (<lab>.zip: zip_collect unpacks it into a folder
# named as the LMS named the archive, and the id is read from that folder's name) or the
# notebook and checkpoint as two files. Another LMS: change the expression (it must name the
# groups student_id and file_id). The checkpoint (.pt) is collected with the notebook.
c.FileNameCollectorPlugin.named_regexp = (
    r".*/(?P<student_id>[^/_]+)_(?:LATE_)?\d+_\d+_(?:lab\d+_[a-z0-9]+(?:-\d+)?/)?"
    r"(?P<file_id>lab\d+_[a-z0-9]+)(?:-\d+)?\.(?:ipynb|pt)$"
)
c.FileNameCollectorPlugin.valid_ext = [".ipynb", ".pt"]
