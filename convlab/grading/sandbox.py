"""The box a submission runs in: a private staging folder, a kernel under limits, another user.

Each submission is graded from a staged copy in a folder whose name cannot be guessed
(:func:`stage_root`); its subfolder ``sockets`` holds the unix sockets over which the kernel
and nbgrader talk (:func:`socket_folder`). The kernel starts through :func:`kernel_main`, which
nbgrader runs as the command of a temporary kernelspec (:func:`kernelspec`): address space,
CPU seconds (a backstop far above the notebook's wall-clock limit), file size and core dumps
are limited; the kernel is killed when the nbgrader process that started it dies (which is how
the grader enforces the wall-clock limit); it runs in a network namespace of its own, with no
network at all (:func:`isolate_network`, which takes root; :func:`network_problem` says
beforehand whether it can be made); and with a user given it drops to that user. When the
grader's interpreter lives where that user cannot execute it, :func:`portable_python` copies
it where every user can.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from convlab.grading.settings import GIB, Settings

__all__ = [
    "KERNEL_NAME",
    "isolate_network",
    "kernel_main",
    "kernelspec",
    "network_problem",
    "portable_python",
    "protect_course",
    "python_for",
    "socket_folder",
    "socket_problem",
    "stage_root",
]

KERNEL_NAME = "convlab-grading"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
CLONE_NEWNET = 0x40000000  # <linux/sched.h>


def _stage_parent() -> Path:
    return Path(tempfile.gettempdir()) / "convlab-grading"


@contextlib.contextmanager
def stage_root() -> Iterator[Path]:
    """A private folder for one run: its parent cannot be listed, its name cannot be guessed."""
    parent = _stage_parent()
    parent.mkdir(mode=0o711, exist_ok=True)
    os.chmod(parent, 0o711)
    stage = parent / secrets.token_hex(16)
    stage.mkdir(mode=0o755)
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def socket_folder(stage: Path, user: str | None) -> Path:
    """The folder of a kernel's unix sockets in the staging folder ``stage``.

    The kernel talks to nbgrader over unix sockets (``ipc``), not TCP ports on loopback, which
    another process starting a kernel at the same moment could take. Only the grader can list
    the folder; with a user, the kernel (run as that user) may create its sockets in it, and
    no one but a file's owner may remove it (mode 1733, sticky).
    """
    folder = stage / "sockets"
    folder.mkdir(mode=0o700)
    if user and os.geteuid() == 0:
        folder.chmod(0o1733)
    return folder


def socket_problem() -> str:
    """Why kernels' sockets cannot live in the staging folders ("" when they can)."""
    longest = _stage_parent() / secrets.token_hex(16) / "sockets" / "kernel-99"
    if len(os.fsencode(longest)) >= 104:  # sun_path holds 104 bytes on macOS, 108 on Linux
        return (
            f"a kernel's socket path ({longest}) is too long for a unix socket: set TMPDIR to "
            "a short folder, such as /tmp"
        )
    return ""


def isolate_network() -> None:
    """Move this process into a network namespace of its own (root only).

    The namespace has no interface but a loopback that is down: no address can be reached, the
    grading machine's own (127.0.0.1) included. Unix sockets in the file system still work,
    which is how the kernel talks to nbgrader (see :func:`socket_folder`).

    Raises:
        OSError: the namespace cannot be made (not root, no capability, not Linux).
    """
    unshare = getattr(ctypes.CDLL(None, use_errno=True), "unshare", None)
    if unshare is None:
        raise OSError(errno.ENOSYS, "this system has no network namespaces (Linux has them)")
    if unshare(CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"unshare(CLONE_NEWNET) failed: {os.strerror(error)}")


def network_problem() -> str:
    """Why grading kernels cannot get a network namespace here ("" when they can).

    Tried in a short-lived child process, as :func:`kernel_main` will do it, so the grader's
    own process keeps its network.
    """
    code = (
        "import ctypes, sys; unshare = getattr(ctypes.CDLL(None, use_errno=True), 'unshare', "
        f"None); sys.exit({errno.ENOSYS} if unshare is None else "
        f"unshare({CLONE_NEWNET}) and ctypes.get_errno())"
    )
    probe = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, cwd="/")
    if probe.returncode == 0:
        return ""
    why = os.strerror(probe.returncode) if 0 < probe.returncode < 256 else "it failed"
    if os.geteuid() != 0:
        why += "; it takes root"
    return (
        f"grading kernels cannot get a network namespace of their own here (unshare: {why}), "
        "so they can reach the network: run the grader as root to cut them off"
    )


def kernel_main(argv: Sequence[str]) -> None:
    """Start an IPython kernel under resource limits, without network, optionally as another
    user.

    Called as the grading kernelspec's command: ``python -m convlab.grading kernel --memory-gb 8
    --cpu-seconds 3600 --file-mb 512 --no-network [--user nobody] -f CONNECTION_FILE``; each
    limit applies when given. ``--no-network`` moves the kernel into a network namespace of its
    own first (:func:`isolate_network`; the kernel is not started when that fails). When
    ``--user`` is given and this runs as root, the connection file (mode 600, root's) is copied
    into a private folder owned by that user, the process drops to the user's uid and gid, and
    its home becomes that folder.
    The kernel dies with the process that started it (nbgrader), so that the grader's stopping
    nbgrader at the notebook's wall-clock limit stops the kernel too, even one busy in a C call
    (ipykernel's own check for a dead parent needs the GIL).
    """
    parser = argparse.ArgumentParser(prog="python -m convlab.grading kernel")
    parser.add_argument("--memory-gb", type=float, default=None)
    parser.add_argument("--cpu-seconds", type=int, default=None)
    parser.add_argument("--file-mb", type=float, default=None)
    parser.add_argument("--no-network", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--user", default=None)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--site", default=None, help="site-packages the kernel must import from")
    parser.add_argument("-f", dest="connection_file", required=True)
    args = parser.parse_args(argv)
    parent = os.getppid()

    if args.no_network:  # before the change of user: it takes root
        try:
            isolate_network()
        except OSError as error:
            raise SystemExit(f"convlab grading kernel: not started, {error.strerror}") from None
    if args.memory_gb is not None:
        memory = int(args.memory_gb * GIB)
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if args.cpu_seconds is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (args.cpu_seconds, args.cpu_seconds + 5))
    if args.file_mb is not None:
        size = int(args.file_mb * 1e6)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    connection = args.connection_file
    env = dict(os.environ)
    if args.threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, str(args.threads))
    if args.user and os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(args.user)
        home = Path(tempfile.mkdtemp(prefix="convlab-kernel-"))
        os.chown(home, entry.pw_uid, entry.pw_gid)
        copied = home / Path(connection).name
        shutil.copy(connection, copied)
        os.chown(copied, entry.pw_uid, entry.pw_gid)
        connection = str(copied)
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
        env.update(HOME=str(home), MPLCONFIGDIR=str(home), TMPDIR=str(home), USER=args.user)
    command = [args.python, "-m", "ipykernel_launcher", "-f", connection]
    if args.python != sys.executable:  # a copied interpreter: its libpython is beside it
        env["LD_LIBRARY_PATH"] = str(Path(args.python).parent.parent / "lib")
    if args.site:
        # a Python outside the grader's environment: add its packages, .pth files included
        boot = (
            "import site, sys, runpy; site.addsitedir(sys.argv.pop(1)); "
            "sys.argv[0] = 'ipykernel_launcher'; runpy.run_module('ipykernel_launcher', "
            "run_name='__main__', alter_sys=True)"
        )
        command = [args.python, "-c", boot, args.site, "-f", connection]
    _die_with(parent)  # after the change of user, which clears the parent-death signal
    os.execve(command[0], command, env)


def _die_with(parent: int) -> None:
    """Have Linux kill this process (and the program it becomes) when ``parent`` dies.

    The setting outlives ``execve``. Elsewhere than Linux this does nothing: the kernel is then
    left to ipykernel's own check for a dead parent.
    """
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is None:
        return
    if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the setting took effect
        os._exit(1)


def kernelspec(folder: Path, settings: Settings, python: str, site: str | None) -> Path:
    """A kernelspec folder whose kernel starts through :func:`kernel_main`, with the limits
    (protection ``limits``) and without network (protection ``network``) as settings say."""
    argv = [sys.executable, "-m", "convlab.grading", "kernel", "--python", python]
    if "limits" in settings.protections:
        argv += [
            "--memory-gb", str(settings.memory_gb),
            "--cpu-seconds", str(settings.cpu_backstop),
            "--file-mb", str(settings.max_file_mb),
        ]  # fmt: skip
    if "network" in settings.protections:
        argv.append("--no-network")
    if settings.threads:
        argv += ["--threads", str(settings.threads)]
    if settings.user:
        argv += ["--user", settings.user]
    if site:
        argv += ["--site", site]
    argv += ["-f", "{connection_file}"]
    spec = folder / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "convlab grading", "language": "python"})
    )
    return folder


def _can_run(user: str, python: str, env: dict[str, str] | None = None) -> str:
    """Why ``user`` cannot import torch and ipykernel with ``python`` ("" when it can)."""
    probe = subprocess.run(
        ["runuser", "-u", user, "--", python, "-c", "import torch, ipykernel"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )
    if probe.returncode == 0:
        return ""
    lines = probe.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit code {probe.returncode}"


def portable_python(destination: Path) -> Path:
    """Copy this interpreter and its standard library where every user can read them.

    The grader's environment often lives under root's home (mode 700), where an unprivileged
    kernel cannot execute the interpreter. The copy (about 300 MB, made once) runs the
    environment's packages through ``--site``.

    Returns:
        The copied interpreter.
    """
    import sysconfig

    base = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = destination / "bin" / version
    if not python.exists():
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        shutil.copytree(
            stdlib,
            destination / "lib" / version,
            ignore=shutil.ignore_patterns("site-packages", "test", "idlelib", "tkinter"),
            dirs_exist_ok=True,
        )
        for library in (base / "lib").glob("libpython*"):
            shutil.copy2(library, destination / "lib" / library.name, follow_symlinks=True)
        (destination / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(sys.executable).resolve(), python)
        for folder in [destination, *destination.rglob("*")]:
            folder.chmod(
                folder.stat().st_mode | 0o555
                if folder.is_dir()
                else 0o755
                if folder == python
                else 0o644
            )
    return python


def python_for(user: str | None) -> tuple[str, str | None]:
    """An interpreter the kernel's user can run, and the site-packages to add (or None)."""
    if not user or os.geteuid() != 0:
        return sys.executable, None
    if not _can_run(user, sys.executable):
        return sys.executable, None
    import site

    packages = next(p for p in site.getsitepackages() if p.endswith("site-packages"))
    python = portable_python(Path(tempfile.gettempdir()) / "convlab-python")
    env = dict(os.environ, LD_LIBRARY_PATH=str(python.parent.parent / "lib"))
    boot = f"import site; site.addsitedir({packages!r}); import torch, ipykernel"
    probe = subprocess.run(
        ["runuser", "-u", user, "--", str(python), "-c", boot],
        capture_output=True, text=True, env=env, cwd="/",
    )  # fmt: skip
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["no access"])[-1]
        raise SystemExit(
            f"the user {user} cannot import torch from {packages} ({why}): install the course's "
            "environment in a folder every user can read (for example `make install "
            "VENV=/opt/convlab/.venv`)"
        )
    return str(python), packages


def protect_course(root: Path) -> list[str]:
    """Make the course's private folders unreadable to other users; what was changed."""
    changed = []
    for name in ("solutions", "submitted", "autograded", "feedback", "tests", "checkpoints",
                 "gradebook.db", "downloaded"):  # fmt: skip
        path = root / name
        if path.exists() and path.stat().st_mode & 0o077:
            path.chmod(path.stat().st_mode & ~0o077)
            changed.append(name)
    return changed
