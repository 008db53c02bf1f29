"""python -m convlab bench --quick: every comparison is made and recorded with the machine's facts.

These are not timed tests: the figures of a quick run mean little and no speed target is asserted.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    result = subprocess.run(
        # one thread: with two, torch's parallel kernels stall badly whenever the other test
        # worker (pytest -n 2) holds the second core, and this test is about the recording
        [
            sys.executable,
            "-m",
            "convlab",
            "bench",
            "--quick",
            "--threads",
            "1",
            "--json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(path.read_text()), result.stdout


def _rate(section: dict, unit: str = "images_per_second") -> float:
    value = section[unit]
    assert value > 0 and all(r > 0 for r in section["runs"])
    assert value == statistics.median(section["runs"])
    return value


def test_fit_against_the_plain_loop(quick_run):
    results, _ = quick_run
    section = results["fit_vs_plain"]
    fit, plain = _rate(section["fit"]), _rate(section["plain"])
    assert section["ratio"] == pytest.approx(fit / plain, rel=1e-12)
    rounds = [a / b for a, b in zip(section["fit"]["runs"], section["plain"]["runs"], strict=True)]
    assert section["ratio_per_round"]["runs"] == pytest.approx(rounds, rel=1e-12)
    assert section["target"] == 0.95 and section["target_met"] == (section["ratio"] >= 0.95)
    assert len(section["fit"]["runs"]) == len(section["plain"]["runs"]) == section["runs"]
    # The plain loop really does fit's work: the same seed gives the same weights on the CPU.
    assert section["max_weight_difference_after_a_run"] <= 1e-5


def test_loader_against_torchvision(quick_run):
    results, _ = quick_run
    section = results["loader_vs_torchvision"]
    ours = _rate(section["convlab"])
    theirs = {w: _rate(section[f"torchvision_workers_{w}"]) for w in (0, 2)}
    for w, rate in theirs.items():
        assert section[f"ratio_workers_{w}"] == pytest.approx(ours / rate, rel=1e-12)
    assert section["baseline"] == f"torchvision_workers_{max(theirs, key=theirs.get)}"
    assert section["ratio"] == pytest.approx(ours / max(theirs.values()), rel=1e-12)
    assert section["target_met"] == (section["ratio"] >= 3.0)


def test_fit_against_d2l(quick_run):
    results, _ = quick_run
    section = results["fit_vs_d2l"]
    assert section["measured"], section.get("reason")
    fit, d2l = _rate(section["fit"]), _rate(section["d2l"])
    assert section["ratio"] == pytest.approx(fit / d2l, rel=1e-12)
    assert section["fit"] == results["fit_vs_plain"]["fit"]  # one set of fit runs serves both
    check = section["architecture_check"]
    assert check["same_layers"] and check["same_parameter_shapes"]
    assert check["parameters"] == [61_706, 61_706]
    assert check["max_output_difference_with_equal_weights"] < 1e-6


def test_machine_facts_and_gpu_section(quick_run):
    results, stdout = quick_run
    machine = results["machine"]
    for key in ("cpu", "usable_cores", "torch_threads", "python", "torch", "torchvision", "numpy"):
        assert machine[key], key
    assert machine["date"][:2] == "20" and machine["device"]
    assert machine["torch_threads"] == 1  # --threads is applied
    assert results["mode"] == "quick" and results["method"] in stdout
    gpu = results["gpu"]
    if torch.cuda.is_available():
        assert gpu["measured"]
        for name in (
            "float32",
            "channels_last",
            "mixed_precision",
            "mixed_precision_channels_last",
        ):
            _rate(gpu[name], "steps_per_second")
        assert isinstance(gpu["sync_check"]["passed"], bool)
    else:
        assert gpu == {"measured": False, "reason": "no GPU: CUDA is not available"}
        assert machine["gpu"] is None
        assert "were not measured (no GPU" in stdout
