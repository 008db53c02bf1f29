"""convlab.recipes: every family has settings, and expectations come only from recorded runs."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from convlab import models, recipes
from convlab.__main__ import main

SHAPES = {"fashion_mnist": (1, 28), "cifar10": (3, 32)}


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_recipe_model_fits_its_data(name):
    recipe = recipes.RECIPES[name]
    assert recipe.model in models.names()
    channels, side = SHAPES[recipe.data]
    for c, s in ((channels, side), (1, recipe.quick_size)):
        model = recipes.build(recipe, 10, c).eval()
        with torch.no_grad():
            assert model(torch.randn(2, c, s, s)).shape == (2, 10)
    assert recipe.augment == (recipe.data == "cifar10")


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_quick_run_is_recorded_for_the_current_settings(name):
    run = recipes.recorded(name, quick=True)
    assert run is not None, (
        f"no recorded quick run for {name}: python -m convlab recipe {name} --quick --record"
    )
    assert run["settings"] == asdict(recipes.RECIPES[name]), (
        "settings changed since the recorded run"
    )
    assert run["machine"]["device"] and run["versions"]["torch"] and run["date"]
    assert (
        0.0 <= run["test_accuracy"] <= 1.0 and run["epochs"] == recipes.RECIPES[name].quick_epochs
    )


def test_a_quick_run_reproduces_its_recorded_accuracy():
    _, history = recipes.run("lenet", quick=True, progress=False)
    recorded = recipes.recorded("lenet", quick=True)["test_accuracy"]
    assert history[-1]["test_accuracy"] == pytest.approx(recorded, abs=0.03)


def test_unmeasured_runs_are_reported_as_such(capsys):
    assert main(["recipe"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == len(recipes.RECIPES)
    for line, name in zip(lines, recipes.RECIPES, strict=True):
        full = recipes.recorded(name, quick=False)
        assert ("unmeasured" in line.split(recipes.RECIPES[name].data)[1]) == (full is None)


def test_unknown_recipe_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown recipe 'resnet9'.*resnet"):
        recipes.run("resnet9")
