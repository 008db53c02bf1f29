"""Execute the book's notebooks in parallel into Jupyter Book's execution cache.

Jupyter Book runs the notebooks of a book one after another. This script runs them side by
side first, one kernel per CPU core with one PyTorch thread each (small networks gain little
from a second thread and lose much to two kernels fighting over the cores), and stores the
results in the cache that ``jupyter-book build`` reads (``execute_notebooks: cache``). The
build then finds every page executed and only renders it. A notebook that fails here is left
out of the cache, so the build runs it again and reports the error as it always does. Each
kernel talks over unix sockets of its own (ipc_kernel.py), so kernels started side by side
never take each other's ports.

    python tools/execute_book.py [--path-output DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks listed in ``_toc.yml``, in the order of the book."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    entries = [{"file": toc["root"]}]
    for part in toc.get("parts", []):
        entries.extend(part["chapters"])
    entries.extend(toc.get("chapters", []))
    pages: list[Path] = []
    while entries:
        entry = entries.pop(0)
        pages.append(root / f"{entry['file']}.ipynb")
        entries[:0] = entry.get("sections", [])
    return [p for p in pages if p.exists()]


def execute_notebook(path: str, timeout: int) -> tuple[str, str | None, float, str | None]:
    """Run one notebook in its folder: (path, the executed notebook's JSON or None when a cell
    failed, seconds, the error)."""
    from ipc_kernel import IPCKernelManager  # beside this script
    from jupyter_cache.executors.utils import single_nb_execution

    notebook = nbformat.read(path, as_version=4)
    result = single_nb_execution(
        notebook, cwd=str(Path(path).parent), timeout=timeout, allow_errors=False,
        meta_override=True, kernel_manager_class=IPCKernelManager,
    )  # fmt: skip
    if result.err is not None:
        return path, None, result.time, result.exc_string
    return path, nbformat.writes(notebook), result.time, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path-output", default=str(ROOT), help="as for jupyter-book build")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    timeout = int(config.get("execute", {}).get("timeout", 300))
    cache = get_cache(str(Path(args.path_output) / "_build" / ".jupyter_cache"))
    pending = []
    for path in toc_notebooks():
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            pending.append(path)
    if not pending:
        return 0
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by every kernel
    start = time.perf_counter()
    failed = 0
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(execute_notebook, str(p), timeout) for p in pending]
        for future in as_completed(futures):
            path, executed, seconds, error = future.result()
            name = Path(path).relative_to(ROOT)
            if executed is None:
                failed += 1
                print(f"{name}: failed after {seconds:.0f} s (the build will report it)")
                print(error.splitlines()[-1] if error else "", file=sys.stderr)
                continue
            bundle = CacheBundleIn(
                nbformat.reads(executed, as_version=4), path, data={"execution_seconds": seconds}
            )
            cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)
            print(f"{name}: executed in {seconds:.0f} s")
    total = time.perf_counter() - start
    print(f"{len(pending) - failed} of {len(pending)} notebooks executed in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
