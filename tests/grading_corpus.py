"""A corpus of bad submissions of lab 1, built from the real release, each with its outcome.

Every case is a function that writes one student's hand-in (notebook, checkpoint, extra files)
into ``submitted/<student>/lab1_vgg/`` of a course directory. A correct hand-in is the released
notebook with the solution's answers typed in and the checkpoint that running it wrote.

Lab 1's points: vgg_block 1 + 2, build_vgg 2, VGG-16 accounting 2, memory 1, accuracy 3.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_grading  # tools/, on the path through labkit
import nbformat
import torch

ROOT = Path(__file__).resolve().parents[1]
LAB = "lab1_vgg"
FULL = 11.0
# What is left when an answer cell breaks (the tests that need it fail, and so does training
# when the network cannot be built):
WITHOUT_VGG_BLOCK = 3.0  # only the accounting (2) and memory (1) cells pass
WITHOUT_ACCOUNTING = 8.0  # everything but the accounting (2) and memory (1) cells
WITHOUT_ACCURACY = 8.0  # the network is right, its trained weights are not loaded


def answered() -> Any:
    """The released notebook with the solution's answers typed in, as a student hands it in."""
    return bench_grading.answered(LAB)


def cell(notebook: Any, grade_id: str) -> Any:
    return next(
        c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    )


@dataclass(frozen=True)
class Case:
    """A kind of hand-in and what grading must give it."""

    name: str
    write: Callable[[Path, Path], None]  # (submission folder, good checkpoint)
    status: str
    score: float


def _folder(course: Path, student: str) -> Path:
    folder = course / "submitted" / student / LAB
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _notebook(notebook: Any, checkpoint: bool = True, name: str = f"{LAB}.ipynb"):
    def write(folder: Path, good: Path) -> None:
        nbformat.write(notebook, folder / name)
        if checkpoint:
            shutil.copy(good, folder / f"{LAB}.pt")

    return write


def _with_answer(grade_id: str, before: str = "", after: str = ""):
    notebook = answered()
    target = cell(notebook, grade_id)
    target.source = before + target.source + after
    return notebook


def _blank_with(line: str) -> Any:
    """The release left unanswered, with ``line`` at the top of the first answer cell."""
    notebook = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    target = cell(notebook, "vgg_block")
    target.source = line + target.source
    return notebook


def _test_cell(change: Callable[[Any, Any], None]):
    notebook = answered()
    change(notebook, cell(notebook, "test_vgg_block_function"))
    return notebook


def _delete(notebook: Any, test: Any) -> None:
    notebook.cells.remove(test)


def _to_pass(notebook: Any, test: Any) -> None:
    test.source = "pass"


def _duplicate(notebook: Any, test: Any) -> None:
    pasted = copy.deepcopy(test)
    pasted.id = "pasted-copy"  # a pasted cell gets an id of its own
    notebook.cells.insert(notebook.cells.index(test), pasted)


def _to_markdown(notebook: Any, test: Any) -> None:
    index = notebook.cells.index(test)
    markdown = nbformat.v4.new_markdown_cell(test.source)
    markdown.metadata = copy.deepcopy(test.metadata)
    notebook.cells[index] = markdown


def _points(notebook: Any, test: Any) -> None:
    test.metadata["nbgrader"]["points"] = 100


def _schema(notebook: Any, test: Any) -> None:
    test.metadata["nbgrader"]["schema_version"] = 1


def _raw(text: str | bytes, name: str = f"{LAB}.ipynb"):
    def write(folder: Path, good: Path) -> None:
        (folder / name).write_bytes(text.encode() if isinstance(text, str) else text)
        shutil.copy(good, folder / f"{LAB}.pt")

    return write


def _old_format(folder: Path, good: Path) -> None:
    v3 = nbformat.convert(answered(), 3)
    (folder / f"{LAB}.ipynb").write_text(json.dumps(v3))
    shutil.copy(good, folder / f"{LAB}.pt")


def _beside(name: str, text: str):
    def write(folder: Path, good: Path) -> None:
        _notebook(answered())(folder, good)
        (folder / name).write_text(text)

    return write


class _Payload:
    """A pickle that runs a command when loaded without weights_only."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def malicious_checkpoint(marker: str = "/tmp/convlab-grading-payload-ran") -> bytes:
    """A checkpoint whose unpickling creates the file ``marker``."""
    buffer = io.BytesIO()
    torch.save({"model": _Payload(marker)}, buffer)
    return buffer.getvalue()


def _checkpoint(data: Callable[[Path], bytes]):
    def write(folder: Path, good: Path) -> None:
        nbformat.write(answered(), folder / f"{LAB}.ipynb")
        (folder / f"{LAB}.pt").write_bytes(data(good))

    return write


def _huge(good: Path) -> bytes:
    return good.read_bytes() + b"\0" * 3_000_000  # the tests' cap is 2 MB


def _wrong_keys(good: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(3, 3)}, buffer)
    return buffer.getvalue()


def cuda_checkpoint(good: Path) -> bytes:
    """The good checkpoint as if saved from a GPU: every storage tagged ``cuda:0``."""
    source = zipfile.ZipFile(good)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
                assert b"cuda:0" in data
            target.writestr(info, data)
    return out.getvalue()


# The tests run with a 20-second cell timeout and an 8 GiB address-space limit.
LOOP = "while True:\n    pass\n"
PRINTING_LOOP = "while True:\n    print('still going' * 100)\n"
MEMORY_BOMB = "hog = torch.empty(12 * 2**30, dtype=torch.uint8)\n"  # 12 GiB of address space
LOUD = "for _ in range(20_000):\n    print('x' * 1000)\n"  # 20 MB


def cut_off(notebook: Any) -> str:
    """The notebook's file as an upload cut off half way leaves it."""
    text = nbformat.writes(notebook)
    return text[: len(text) // 2]


BAD: list[Case] = [
    Case("not_json", _raw('{"cells": [{"cell_type": "code", '), "unreadable notebook", 0),
    Case("cut_off_mid_file", _raw(cut_off(answered())), "unreadable notebook", 0),
    Case("not_a_notebook", _raw('{"students": ["me"]}'), "unreadable notebook", 0),
    Case("old_nbformat", _old_format, "graded", FULL),
    Case("wrong_name", _notebook(answered(), name="Lab1 VGG (1).ipynb"),
         "graded; wrong file name", FULL),
    Case("missing", lambda folder, good: shutil.copy(good, folder / f"{LAB}.pt"),
         "missing notebook", 0),
    Case("empty", _notebook(nbformat.v4.new_notebook()), "empty notebook", 0),
    Case("test_deleted", _notebook(_test_cell(_delete)), "graded; test cells restored", FULL),
    Case("test_to_pass", _notebook(_test_cell(_to_pass)), "graded; test cells restored", FULL),
    Case("test_duplicated", _notebook(_test_cell(_duplicate)), "graded; test cells restored",
         FULL),
    Case("test_to_markdown", _notebook(_test_cell(_to_markdown)),
         "graded; test cells restored", FULL),
    Case("points_edited", _notebook(_test_cell(_points)), "graded; test cells restored", FULL),
    Case("schema_edited", _notebook(_test_cell(_schema)), "graded; test cells restored", FULL),
    Case("sys_exit", _notebook(_with_answer("vgg_block", "import sys\n\nsys.exit()\n")),
         "graded", WITHOUT_VGG_BLOCK),
    Case("os_exit", _notebook(_with_answer("vgg_accounting", "import os\n\nos._exit(3)\n")),
         "kernel died", 0),
    Case("keyboard_interrupt",
         _notebook(_with_answer("vgg_accounting", "raise KeyboardInterrupt\n")),
         "graded", WITHOUT_ACCOUNTING),
    Case("infinite_loop", _notebook(_with_answer("vgg_accounting", LOOP)),
         "graded; a cell timed out", WITHOUT_ACCOUNTING),
    Case("printing_loop", _notebook(_with_answer("vgg_accounting", PRINTING_LOOP)),
         "graded; a cell timed out", WITHOUT_ACCOUNTING),
    Case("memory_bomb", _notebook(_with_answer("vgg_accounting", MEMORY_BOMB)),
         "graded; out of memory in a cell", WITHOUT_ACCOUNTING),
    Case("megabytes_of_output", _notebook(_with_answer("vgg_accounting", LOUD)), "graded", FULL),
    Case("torch_py_beside", _beside("torch.py", "raise SystemExit('not the real torch')\n"),
         "graded", FULL),
    Case("convlab_py_beside", _beside("convlab.py", "def start(lab):\n    return None\n"),
         "graded", FULL),
    Case("malicious_checkpoint", _checkpoint(lambda good: malicious_checkpoint()),
         "graded; checkpoint rejected", WITHOUT_ACCURACY),
    Case("huge_checkpoint", _checkpoint(_huge), "graded; checkpoint rejected", WITHOUT_ACCURACY),
    Case("checkpoint_wrong_keys", _checkpoint(_wrong_keys), "graded", WITHOUT_ACCURACY),
    Case("checkpoint_from_cuda", _checkpoint(cuda_checkpoint), "graded", FULL),
    Case("calls_cuda", _notebook(_with_answer(
        "vgg_block", after="\n\n_plain_block = vgg_block\n\n\ndef vgg_block(*args):\n"
        "    return _plain_block(*args).cuda()\n")), "graded", FULL),
    Case("patched_checker", _notebook(_with_answer(
        "vgg_block", after="\n\ncheck_same_function = lambda *args, **kwargs: None\n")),
        "tampering suspected", 0),
    Case("patched_checker_module", _notebook(_with_answer(
        "vgg_block", "import convlab.check\n\nconvlab.check.check_output_shape = print\n")),
        "tampering suspected", 0),
    Case("hidden_traceback", _notebook(_with_answer(
        "vgg_block", "get_ipython().showtraceback = lambda *args, **kwargs: None\n")),
        "tampering suspected", 0),
    Case("input_transformer", _notebook(_with_answer(
        "vgg_block", "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n")),
        "tampering suspected", 0),
    Case("transformer_on_blank", _notebook(_blank_with(
        "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n")),
        "tampering suspected", 0),
    Case("pre_run_cell_hook", _notebook(_with_answer(
        "vgg_block", "ip = get_ipython()\nip.events.register('pre_run_cell', lambda info: None)\n")),
        "tampering suspected", 0),
]  # fmt: skip


def write_case(course: Path, case: Case, good: Path) -> None:
    case.write(_folder(course, case.name), good)
