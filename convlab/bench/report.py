"""The machine's facts, the whole benchmark run, its text report and ``python -m convlab bench``."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import torch

from convlab.bench.common import FULL, METHOD, NOISE_LIMIT, QUICK, _noisy
from convlab.bench.gpu import measure_gpu
from convlab.bench.loaders import DATALOADER_WORKERS, compare_loaders
from convlab.bench.training import compare_training
from convlab.device import default_device
from convlab.recipes import cpu_name

__all__ = ["machine_info", "main", "report", "run"]


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def machine_info(device: torch.device) -> dict[str, Any]:
    """What a benchmark figure must be printed beside: machine, versions, date.

    Args:
        device: the device the benchmark trains on.

    Returns:
        CPU model and cores, device and GPU name, library versions, date and load average.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cuda = torch.cuda.is_available()
    return {
        "cpu": cpu_name(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "cuda_available": cuda,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "numpy": _version("numpy"),
        "pillow": _version("pillow"),
        "matplotlib": _version("matplotlib"),
        "d2l": _version("d2l"),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_1_5_15_min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def run(
    *,
    quick: bool = False,
    device: torch.device | str | None = None,
    threads: int | None = None,
    out: TextIO = sys.stdout,
) -> dict[str, Any]:
    """Run every measurement and return them with the machine's facts.

    Args:
        quick: tiny sizes (:data:`QUICK`): checks the code paths, its figures mean little.
        device: where to train (default: CUDA, then MPS, then CPU).
        threads: CPU threads for torch (default: every core this process may use).
        out: where progress lines go.

    Returns:
        A JSON-ready dict: ``machine``, ``method``, ``fit_vs_plain``, ``loader_vs_torchvision``,
        ``fit_vs_d2l``, ``gpu``, ``seconds`` and ``noisy`` (contenders whose runs disagree).
    """
    sizes = QUICK if quick else FULL
    device = default_device() if device is None else torch.device(device)
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        threads = threads or os.cpu_count() or 1
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        results: dict[str, Any] = {
            "mode": "quick" if quick else "full",
            "machine": machine_info(device),
            "sizes": asdict(sizes),
            "method": METHOD,
        }
        print(_heading(results), file=out, flush=True)
        results["fit_vs_plain"], results["fit_vs_d2l"] = compare_training(sizes, device, out)
        results["loader_vs_torchvision"] = compare_loaders(sizes, device, out)
        results["gpu"] = measure_gpu(sizes, device, out)
    finally:
        torch.set_num_threads(previous_threads)
    results["seconds"] = time.perf_counter() - start
    results["noisy"] = _noisy(results)
    load = results["machine"]["load_average_1_5_15_min"]
    results["machine"]["load_average_after"] = list(os.getloadavg()) if load is not None else None
    return results


def _heading(results: dict[str, Any]) -> str:
    m = results["machine"]
    gpu = m["gpu"] or "no GPU"
    return (
        f"convlab bench ({results['mode']}), {m['date']}\n"
        f"machine: {m['cpu']}, {m['usable_cores']} cores, torch on {m['torch_threads']} threads, "
        f"{gpu}; training on {m['device']}\n"
        f"versions: python {m['python']}, torch {m['torch']}, torchvision {m['torchvision']}, "
        f"numpy {m['numpy']}, d2l {m['d2l']}\n"
        f"method: {results['method']}\n"
    )


def _met(section: dict[str, Any]) -> str:
    verdict = "met" if section["target_met"] else "NOT met"
    return f"target >= {section['target']:g}: {verdict}"


def report(results: dict[str, Any]) -> str:
    """The measurements as a few lines of text.

    Args:
        results: the output of :func:`run`.

    Returns:
        The text, one comparison per paragraph.
    """

    def rate(section: dict[str, Any], unit: str = "images_per_second") -> str:
        runs = ", ".join(f"{r:,.0f}" for r in section["runs"])
        label = unit.split("_")[0] + "/s"
        return f"{section[unit]:>10,.1f} {label} (runs: {runs})"

    a = results["fit_vs_plain"]
    lines = [
        f"1. fit against a plain PyTorch loop: {a['model']}, {a['data']}, batch {a['batch_size']}, "
        f"{a['precision']}, {a['device']}",
        f"   fit          {rate(a['fit'])}",
        f"   plain loop   {rate(a['plain'])}",
        f"   ratio fit / plain = {a['ratio']:.3f}   ({_met(a)}); median of the rounds' own "
        f"ratios {a['ratio_per_round']['median']:.3f}",
        f"   largest weight difference after a run from the same seed: "
        f"{a['max_weight_difference_after_a_run']:.1e}",
        "",
    ]
    b = results["loader_vs_torchvision"]
    lines += [
        f"2. convlab's loader against torchvision's DataLoader: {b['data']}, batch "
        f"{b['batch_size']}, {b['device']}",
        f"   convlab Loader                 {rate(b['convlab'])}",
    ]
    for w in DATALOADER_WORKERS:
        section = b[f"torchvision_workers_{w}"]
        lines.append(
            f"   DataLoader, num_workers={w}     {rate(section)}   "
            f"ratio {b[f'ratio_workers_{w}']:.1f}x"
        )
    lines += [f"   ratio {b['ratio_of']} = {b['ratio']:.1f}x   ({_met(b)})", ""]
    c = results["fit_vs_d2l"]
    if c["measured"]:
        check = c["architecture_check"]
        same = check["same_layers"] and check["same_parameter_shapes"]
        lines += [
            f"3. fit against d2l's Trainer (LeNet; d2l on {c['d2l_device']}): same data, batch "
            f"and epochs as 1.",
            f"   fit          {rate(c['fit'])}",
            f"   d2l Trainer  {rate(c['d2l'])}",
            f"   ratio fit / d2l = {c['ratio']:.3f}; median of the rounds' own ratios "
            f"{c['ratio_per_round']['median']:.3f}",
            f"   architectures {'match' if same else 'DIFFER'}: parameters "
            f"{check['parameters'][0]:,} and {check['parameters'][1]:,}, outputs with equal "
            f"weights differ by {check['max_output_difference_with_equal_weights']:.1e}",
            "",
        ]
    else:
        lines += [f"3. fit against d2l's Trainer: not measured ({c['reason']})", ""]
    g = results["gpu"]
    if g["measured"]:
        lines.append(
            f"4. GPU ({g['gpu']}): {g['model']}, batch {g['batch_size']}; fit said: "
            f"{g['fit_settings']['mixed_precision_channels_last']}"
        )
        for name in (
            "float32",
            "channels_last",
            "mixed_precision",
            "mixed_precision_channels_last",
        ):
            lines.append(
                f"   {name:<31}{rate(g[name], 'steps_per_second')}   "
                f"x{g[name]['speedup_over_float32']:.2f}"
            )
        sync = g["sync_check"]
        verdict = "PASS" if sync["passed"] else f"FAIL ({sync['error']})"
        lines.append(
            f"   no synchronization in {sync['steps_watched']} of {sync['steps_per_epoch']} steps "
            f"under set_sync_debug_mode('error'): {verdict}"
        )
    else:
        lines.append(
            f"4. GPU: mixed precision, channels-last and the sync check were not measured "
            f"({g['reason']})"
        )
    if results["noisy"]:
        lines.append(
            f"\nWARNING: runs of {', '.join(results['noisy'])} differ by more than "
            f"x{NOISE_LIMIT} (fastest / slowest): the machine's speed changed during the "
            f"benchmark (other work, or a shared virtual machine; load average "
            f"{results['machine']['load_average_1_5_15_min']} before, "
            f"{results['machine']['load_average_after']} after). Medians resist this, but "
            "quote these figures with care or rerun on an idle machine."
        )
    lines.append(f"\n{results['seconds']:.0f} s in all")
    return "\n".join(lines)


def main(
    *,
    quick: bool = False,
    device: str | None = None,
    json_path: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> int:
    """``python -m convlab bench``: run, print the report, optionally write the JSON.

    Args:
        quick: tiny sizes, for a smoke test.
        device: where to train (default: CUDA, then MPS, then CPU).
        json_path: where to write every measurement with the machine's facts.
        threads: CPU threads for torch.

    Returns:
        The exit status: 0.
    """
    results = run(quick=quick, device=device, threads=threads)
    print(report(results), flush=True)
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"measurements written to {path}")
    return 0
