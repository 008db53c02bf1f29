"""Kernels on unix sockets of their own, for every kernel the project starts outside the grader.

A TCP kernel gets ports from jupyter_client that were free a moment before the kernel binds
them: another process starting a kernel at the same moment can take one, and the kernel dies
with ``ZMQError: Address already in use`` (``make test`` on a fresh clone failed so once). An
IPC kernel talks over unix sockets in a folder made for it alone (mode 700, removed when the
kernel shuts down), which nothing else can take:

    from ipc_kernel import execute
    execute(notebook, cwd=folder, timeout=600)  # every cell, as nbclient's execute

    NotebookClient(notebook, kernel_manager_class=IPCKernelManager)  # or pass the class

The book's executor (execute_book.py), the tests and the maintainers' scripts start their
kernels here. Plain nbgrader commands get the same from ``nbgrader_config.py``, the grader from
its sandbox (``convlab.grading.sandbox``). ``jupyter-book build`` itself re-runs only the pages
execute_book.py could not run (to report their error), one at a time, on myst-nb's own TCP
kernel.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets import default

__all__ = ["IPCKernelManager", "execute", "socket_folder"]

# a socket's path (the kernel's prefix, "-", a port number up to a few digits) must fit in
# sun_path: 108 bytes on Linux and 104 on macOS, the terminating zero included
LONGEST_FOLDER = 80


def socket_folder() -> str:
    """A new folder (mode 700) for one kernel's sockets, at a path short enough for them."""
    base = tempfile.gettempdir()
    if len(os.fsencode(base)) + len("/kernel-12345678") > LONGEST_FOLDER:
        base = "/tmp"
    return tempfile.mkdtemp(prefix="kernel-", dir=base)


class IPCKernelManager(AsyncKernelManager):
    """nbclient's kernel manager on unix sockets in a folder of the kernel's own."""

    _socket_folder: str | None = None

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    def _ip_default(self) -> str:  # jupyter_client's name for the default of ``ip``
        if self.transport != "ipc":
            return super()._ip_default()
        self._socket_folder = socket_folder()
        return os.path.join(self._socket_folder, "kernel")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and self._socket_folder:
            shutil.rmtree(self._socket_folder, ignore_errors=True)


def execute(
    notebook: Any, cwd: str | Path, timeout: int, save_as: str | None = None, **options: Any
) -> Any:
    """Run every cell of ``notebook`` (in place) on an IPC kernel started in ``cwd``.

    Args:
        notebook: an nbformat notebook.
        cwd: the kernel's working folder.
        timeout: seconds a cell may run.
        save_as: first write the notebook there, under this name, as the file a student has
            open (a lab's last cell packs that file to hand in).
        options: more of nbclient's ``NotebookClient`` options.

    Returns:
        The notebook, its outputs filled in.
    """
    from nbclient import NotebookClient

    if save_as is not None:
        import nbformat

        nbformat.write(notebook, Path(cwd) / save_as)
    return NotebookClient(
        notebook,
        timeout=timeout,
        resources={"metadata": {"path": str(cwd)}},
        kernel_manager_class=IPCKernelManager,
        **options,
    ).execute()
