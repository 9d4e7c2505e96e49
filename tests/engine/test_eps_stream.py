"""Per-epsilon accuracy as each epsilon finishes: `evaluate_attack(on_eps=...)` reports every grid epsilon once,
ascending, with the counts the finished result stores; attacks that work through the grid one epsilon at a time
report an epsilon before the next one is attacked, attacks that compute the whole grid at once report at the end."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from rttui.engine.attacks import transfer as tr
from rttui.engine.evaluate import evaluate_attack

GRID = [0.1, 0.0, 0.03, 0.01]  # unsorted on purpose: the engine sorts it and reports in ascending order
PGD = {"steps": 3}


def _stream(model, x, y, attack: str, params: dict[str, Any], mode: str, grid=GRID, **kw) -> tuple[Any, list]:
    """Run one evaluation; every call of on_eps with how many progress ticks had been reported before it."""
    ticks: list[int] = []
    seen: list[tuple[float, int, int, int]] = []
    res = evaluate_attack(
        model,
        x,
        y,
        attack,
        params,
        grid,
        mode=mode,
        batch_size=40,
        seed=0,
        on_progress=lambda done, total: ticks.append(done),
        on_eps=lambda eps, k, n: seen.append((eps, k, n, len(ticks))),
        **kw,
    )
    return res, seen, len(ticks)


def _check_counts(res, seen) -> None:
    """Once per epsilon, ascending, each with the count and n of the result's own row."""
    assert [s[0] for s in seen] == sorted(GRID)
    assert [(s[1], s[2]) for s in seen] == [(m["n_adv_correct"], m["n"]) for m in res.metrics()]


@pytest.mark.parametrize(
    ("attack", "params", "mode"),
    [
        ("pgd", PGD, "sweep"),
        ("pgd", PGD, "independent"),
        ("pgd", {**PGD, "restarts": 2, "warm_start": True}, "sweep"),
        ("fgsm", {}, "independent"),
    ],
)
def test_attacks_over_the_grid_report_each_eps_as_it_finishes(trained, attack: str, params: dict, mode: str) -> None:
    m, x, y = trained
    res, seen, total_ticks = _stream(m, x, y, attack, params, mode)
    _check_counts(res, seen)
    # streamed, not at the end: each epsilon is reported before the attack moves on to the next one
    # (samples survive eps 0.01 on this model, so eps 0.03 still has batches to attack after it is reported)
    ticks_at = [s[3] for s in seen]
    assert 0 < ticks_at[0] < ticks_at[1] < total_ticks, (ticks_at, total_ticks)
    assert ticks_at == sorted(ticks_at)
    # the same numbers as a run without the callback: reporting changes nothing
    plain = evaluate_attack(m, x, y, attack, params, GRID, mode=mode, batch_size=40, seed=0)
    assert plain.metrics() == res.metrics()


@pytest.mark.parametrize(("attack", "params", "mode"), [("fgsm", {}, "sweep"), ("deepfool", {"steps": 10}, "sweep")])
def test_attacks_that_compute_the_grid_at_once_report_it_at_the_end(trained, attack, params, mode) -> None:
    """FGSM's sweep shares one gradient over the grid and DeepFool runs once per sample: no epsilon is final
    before the last batch, so every epsilon is reported at the end, still once each, ascending."""
    m, x, y = trained
    res, seen, total_ticks = _stream(m, x, y, attack, params, mode)
    _check_counts(res, seen)
    assert {s[3] for s in seen} == {total_ticks}


@pytest.mark.parametrize("mode", ["sweep", "independent"])
def test_a_transfer_attack_reports_each_eps_as_it_finishes(trained, mode: str) -> None:
    m, x, y = trained
    sur = tr.Surrogate(copy.deepcopy(m), "sibling", seed=3)
    res, seen, total_ticks = _stream(m, x, y, "transfer", {**PGD, "surrogate": "sibling"}, mode, surrogate=sur)
    _check_counts(res, seen)
    ticks_at = [s[3] for s in seen]
    assert 0 < ticks_at[0] < ticks_at[1] < ticks_at[2] < total_ticks, (ticks_at, total_ticks)


def test_autoattack_reports_each_eps_as_it_finishes() -> None:
    pytest.importorskip("pyautoattack")
    from torch import nn

    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, 5)).eval()
    x = torch.rand(12, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = m(x).argmax(1)
    grid = [0.001, 0.002, 0.3]
    seen: list[tuple[float, int, int]] = []
    ticks: list[int] = []
    res = evaluate_attack(
        m,
        x,
        y,
        "autoattack",
        {},
        grid,
        seed=0,
        num_classes=5,
        on_progress=lambda done, total: ticks.append(done),
        on_eps=lambda eps, k, n: seen.append((eps, k, n, len(ticks))),
    )
    assert [s[0] for s in seen] == grid
    assert [(s[1], s[2]) for s in seen] == [(r["n_adv_correct"], r["n"]) for r in res.metrics()]
    assert seen[0][3] < len(ticks)  # the first epsilon came before the last one was attacked


def test_a_torchattacks_ball_attack_reports_each_eps_as_it_finishes(trained) -> None:
    pytest.importorskip("torchattacks", reason="the torchattacks extra is in the test extra")
    from rttui.study import catalog

    m, x, y = trained
    params = {k: p.default for k, p in catalog.attacks()["ta:PGD"].params.items()} | {"steps": 3}
    res, seen, total_ticks = _stream(m, x, y, "ta:PGD", params, "sweep")
    _check_counts(res, seen)
    ticks_at = [s[3] for s in seen]
    assert 0 < ticks_at[1] < ticks_at[2] < total_ticks, (ticks_at, total_ticks)
