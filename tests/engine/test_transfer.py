"""The transfer attack in the engine: crafted on a surrogate, classified by the target.

A model used as its own sibling surrogate must give white-box PGD's numbers exactly; a surrogate that knows
nothing (random weights) must leave a trained target about as accurate as clean; the feature-space attack on
the source backbone must push the features further apart as epsilon grows; cached images must be reused as
they are.
"""

from __future__ import annotations

import copy
from itertools import pairwise

import numpy as np
import pytest
import torch

from rttui.engine.attacks import transfer as tr
from rttui.engine.attacks.base import perturbation_norm
from rttui.engine.evaluate import evaluate_attack
from rttui.engine.features import backbone_features
from rttui.engine.models import create_model

GRID = [0.0, 0.01, 0.03, 0.1]
PGD = {"norm": "linf", "steps": 3, "rel_step_size": 0.25, "random_start": True, "restarts": 1}


class DictCache:
    """A CraftCache in memory that counts what it was asked."""

    def __init__(self) -> None:
        self.store: dict[tuple[float, tuple[float, ...]], tuple[torch.Tensor, np.ndarray]] = {}
        self.loads = self.saves = 0

    def load(self, eps, prior):
        self.loads += 1
        return self.store.get((eps, prior))

    def save(self, eps, prior, x_adv, score):
        self.saves += 1
        self.store[(eps, prior)] = (x_adv.clone(), score.copy())


def _transfer(m, x, y, sur, params, mode="sweep", seed=0, batch_size=250):
    return evaluate_attack(
        m, x, y, "transfer", params, GRID, mode=mode, batch_size=batch_size, seed=seed, surrogate=sur
    )


@pytest.mark.parametrize(
    ("mode", "extra"),
    [("sweep", {}), ("independent", {}), ("sweep", {"restarts": 2})],
)
def test_transfer_from_the_model_itself_equals_white_box_pgd(trained, mode: str, extra: dict) -> None:
    """Transfer is single-shot per eps in either mode, so it equals white-box PGD's independent mode."""
    m, x, y = trained
    params = {**PGD, **extra}
    white = evaluate_attack(m, x, y, "pgd", params, GRID, mode="independent", batch_size=32, seed=3)
    sur = tr.Surrogate(copy.deepcopy(m), "sibling", seed=3)
    # Other batches than the white-box run: each sample's start and steps do not depend on its batch.
    res = _transfer(m, x, y, sur, {**params, "surrogate": "sibling", "sibling": {}}, mode, seed=3, batch_size=50)
    assert [r["n_adv_correct"] for r in res.metrics()] == [r["n_adv_correct"] for r in white.metrics()]
    assert np.array_equal(res.fooled, white.fooled)
    assert np.array_equal(res.adv_pred, white.adv_pred)
    assert white.metrics()[2]["n_adv_correct"] < white.metrics()[0]["n_adv_correct"]  # the attack does something


@pytest.mark.parametrize("kind", ["sibling", "source"])
def test_transfer_from_a_randomly_initialised_surrogate_leaves_clean_accuracy(trained, kind: str) -> None:
    m, x, y = trained
    torch.manual_seed(123)
    rand = create_model({"name": "test_resnet"}, 5 if kind == "sibling" else 0, 16).eval()
    res = _transfer(m, x, y, tr.Surrogate(rand, kind, seed=0), {**PGD, "surrogate": kind}, "independent")
    rows = res.metrics()
    for r in rows[:3]:  # eps <= 0.03: what a surrogate that knows nothing of the task should not change
        assert r["n_clean_correct"] - r["n_adv_correct"] <= 3, r
    white = evaluate_attack(m, x, y, "pgd", PGD, GRID, mode="independent", seed=0).metrics()
    assert white[2]["n_adv_correct"] < rows[2]["n_adv_correct"] - 3  # the same budget white-box does much more


def test_feature_attack_raises_the_source_feature_distance_monotonically_with_eps(trained) -> None:
    m, x, y = trained
    source = copy.deepcopy(m)
    x = x[:48]
    with torch.no_grad():
        f0 = backbone_features(source, x)
    sur = tr.Surrogate(source, "source", seed=0)
    means, noise = [], []
    for eps in [0.01, 0.02, 0.04, 0.08, 0.16]:
        xa, score = tr.craft(sur, x, y[:48], eps, {**PGD, "steps": 5}, batch_size=16)
        assert float(perturbation_norm(xa, x, "linf").max()) <= eps + 1e-6
        assert float(xa.min()) >= 0 and float(xa.max()) <= 1
        with torch.no_grad():
            d = tr.feature_distance(source, xa, f0).numpy()
            start = tr.per_sample_start(x, list(range(48)), eps, "linf", 0)
            noise.append(float(tr.feature_distance(source, start, f0).mean()))
        assert np.allclose(d, score, rtol=1e-4, atol=1e-5)  # the score is the distance reached
        means.append(float(d.mean()))
    assert all(b > a for a, b in pairwise(means)), means
    assert all(d > 2 * r for d, r in zip(means, noise, strict=True)), (means, noise)  # not just the random start


def test_feature_attack_needs_its_random_start(trained) -> None:
    m, x, y = trained
    with pytest.raises(ValueError, match="random_start"):
        tr.craft(tr.Surrogate(m, "source", 0), x[:4], y[:4], 0.03, {**PGD, "random_start": False}, 4)


def test_transfer_reuses_cached_images_without_crafting(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    m, x, y = trained
    cache = DictCache()
    sur = tr.Surrogate(copy.deepcopy(m), "source", seed=0, cache=cache)
    params = {**PGD, "surrogate": "source"}
    first = _transfer(m, x, y, sur, params)
    assert cache.saves == 3  # every positive epsilon once (eps 0 is the clean image)
    assert "crafted=3" in first.path and "reused=0" in first.path

    def boom(*a, **k):
        raise AssertionError("crafted again")

    monkeypatch.setattr(tr, "craft", boom)
    again = _transfer(m, x, y, sur, params)
    assert "crafted=0" in again.path and "reused=3" in again.path
    assert np.array_equal(again.fooled, first.fooled) and np.array_equal(again.adv_pred, first.adv_pred)


def test_transfer_single_shot_never_counts_an_example_chosen_by_the_target(trained) -> None:
    """A sample whose smaller-eps example fools the target but whose eps example does not counts as robust at eps,
    in sweep mode as in independent mode: picking the example that works needs the target's answers."""
    m, x, y = trained
    small, large = GRID[1], GRID[2]
    white = evaluate_attack(m, x, y, "pgd", PGD, [small], mode="independent", seed=0)
    picked = np.flatnonzero(white.clean_correct & white.fooled[0])
    assert len(picked)
    from rttui.engine.attacks.pgd import pgd

    fooling = x.clone()
    with torch.enable_grad():
        fooling[picked] = pgd(m, x[picked], y[picked], small, 10, small / 4, "linf", rand_init=False)
    cache = DictCache()  # crafted images as a surrogate might leave them: fooling at `small`, clean at `large`
    cache.store[(small, (GRID[0],))] = (fooling.float(), np.zeros(len(x)))
    cache.store[(large, (GRID[0], small))] = (x.clone().float(), np.zeros(len(x)))
    cache.store[(GRID[3], (GRID[0], small, large))] = (x.clone().float(), np.zeros(len(x)))
    sur = tr.Surrogate(copy.deepcopy(m), "source", seed=0, cache=cache)
    params = {**PGD, "surrogate": "source"}
    res = {mode: _transfer(m, x, y, sur, params, mode) for mode in ("sweep", "independent")}
    with torch.no_grad():
        fooled_small = picked[(m(fooling[picked]).argmax(1) != y[picked]).numpy()]
    assert len(fooled_small)
    for r in res.values():
        assert "crafted=0" in r.path and "single_shot" in r.path
        assert r.fooled[1, fooled_small].all()  # fooled at the small eps by its own example
        assert not r.fooled[2, fooled_small].any()  # robust at the large eps: its own example does not fool
        acc = [row["n_adv_correct"] for row in r.metrics()]
        assert acc[2] == int(r.clean_correct.sum())  # every clean-correct sample stands at the large eps
    assert np.array_equal(res["sweep"].fooled, res["independent"].fooled)
