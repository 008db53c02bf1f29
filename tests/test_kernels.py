"""Kernels started side by side never take each other's ports (issue 14, fault 11).

jupyter_client gives a TCP kernel ports that were free a moment earlier; between the moment it
picks them and the moment the kernel binds them, another process starting its own kernel can
take one, and that kernel dies with ``ZMQError: Address already in use``. Kernels that talk
over unix sockets in a folder of their own cannot collide.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

import execute_book  # noqa: E402  (tools/, on the tests' path)

# a cell that reports how its kernel is connected, and proves it ran
REPORT = (
    "import json\n"
    "import ipykernel\n"
    "\n"
    "info = ipykernel.get_connection_info(unpack=True)\n"
    "print(json.dumps({'transport': info['transport'], 'ip': info['ip'], 'answer': 6 * 7}))\n"
)
SOCKET_PATH_LIMIT = 107  # bytes in sun_path, the terminating zero left out (Linux)


def _report(notebook) -> dict:
    [output] = [o for o in notebook.cells[0].outputs if o.get("name") == "stdout"]
    return json.loads(output["text"])


@pytest.mark.slow
def test_thirty_book_kernels_started_at_once_all_run_on_sockets_of_their_own(tmp_path):
    count = 30
    paths = []
    for index in range(count):
        folder = tmp_path / f"page{index}"
        folder.mkdir()
        path = folder / "page.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(REPORT)]), path)
        paths.append(str(path))
    begin = time.monotonic()
    with ThreadPoolExecutor(max_workers=count) as pool:
        runs = list(pool.map(lambda path: execute_book.execute_notebook(path, 120), paths))
    seconds = time.monotonic() - begin
    failed = [(path, error) for path, executed, _, error in runs if executed is None]
    assert failed == [], failed
    reports = [_report(nbformat.reads(executed, as_version=4)) for _, executed, _, _ in runs]
    assert [r["answer"] for r in reports] == [42] * count
    assert {r["transport"] for r in reports} == {"ipc"}
    prefixes = [r["ip"] for r in reports]
    assert len(set(prefixes)) == count, "two kernels shared a socket folder"
    for prefix in prefixes:
        assert os.path.isabs(prefix) and len(os.fsencode(f"{prefix}-99")) < SOCKET_PATH_LIMIT
        assert not Path(prefix).parent.exists(), f"{prefix}: its socket folder was left behind"
    assert seconds < 300, seconds
