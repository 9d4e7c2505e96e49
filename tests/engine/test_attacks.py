"""Attacks live in [0, 1] pixel space, respect their epsilon ball and leave the model as they found it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rttui.engine.attacks import fgsm, fgsm_grid, perturbation_norm, pgd
from rttui.engine.data import load_task
from rttui.engine.evaluate import evaluate_attack, predict
from rttui.engine.models import create_model
from rttui.engine.train import fit


@pytest.fixture(scope="module")
def trained():
    """A small digits classifier, trained enough to be mostly right (clean)."""
    torch.manual_seed(0)
    task = load_task({"dataset": "digits", "classes": [5, 6, 7, 8, 9], "test_size": 100, "split_seed": 0}, 16)
    m = create_model({"name": "test_resnet"}, 5, 16)
    fit(m, task.train, {"epochs": 4, "lr": 3e-3, "batch_size": 32}, 0)
    m.eval()
    return m, task.test.x, task.test.y


def test_model_is_accurate_enough_for_attack_tests(trained) -> None:
    m, x, y = trained
    assert (predict(m, x) == y.numpy()).mean() > 0.6


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_eps_zero_leaves_accuracy_unchanged(trained, attack: str) -> None:
    m, x, y = trained
    res = evaluate_attack(m, x, y, attack, {"steps": 3}, [0.0], seed=0)
    row = res.metrics()[0]
    assert row["n_adv_correct"] == row["n_clean_correct"]
    assert row["max_perturbation"] == 0.0


@pytest.mark.parametrize("eps", [0.01, 0.03, 0.1])
def test_fgsm_and_pgd_stay_in_the_linf_ball_and_the_box(trained, eps: float) -> None:
    m, x, y = trained
    for xa in (fgsm(m, x, y, eps), pgd(m, x, y, eps, steps=5, step_size=eps / 2)):
        assert float(perturbation_norm(xa, x, "linf").max()) <= eps + 1e-6
        assert float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0


def test_pgd_l2_stays_in_the_l2_ball(trained) -> None:
    m, x, y = trained
    xa = pgd(m, x, y, 0.5, steps=5, step_size=0.2, norm="l2", gen=torch.Generator().manual_seed(0))
    assert float(perturbation_norm(xa, x, "l2").max()) <= 0.5 + 1e-5


def test_attacks_leave_no_gradients_and_restore_mode(trained) -> None:
    m, x, y = trained
    m.zero_grad(set_to_none=True)
    m.train()
    flags = [p.requires_grad for p in m.parameters()]
    pgd(m, x[:8], y[:8], 0.03, steps=2)
    fgsm(m, x[:8], y[:8], 0.03)
    assert all(p.grad is None for p in m.parameters())
    assert [p.requires_grad for p in m.parameters()] == flags
    assert m.training
    m.eval()


def test_attack_runs_in_eval_mode(trained) -> None:
    """A batch-norm model attacked in train mode would use batch statistics; ours must match eval logits."""
    m, x, y = trained
    seen = []
    hook = m.register_forward_pre_hook(lambda mod, inp: seen.append(mod.training))
    m.train()
    pgd(m, x[:4], y[:4], 0.03, steps=2)
    hook.remove()
    m.eval()
    assert seen and not any(seen)


def test_fgsm_grid_equals_per_eps_fgsm(trained) -> None:
    m, x, y = trained
    grid = [0.01, 0.03, 0.05]
    for e, xa in zip(grid, fgsm_grid(m, x, y, grid), strict=True):
        assert torch.equal(xa, fgsm(m, x, y, e))
    sweep = evaluate_attack(m, x, y, "fgsm", {}, grid, mode="sweep").metrics()
    indep = evaluate_attack(m, x, y, "fgsm", {}, grid, mode="independent").metrics()
    assert [r["n_adv_correct"] for r in sweep] == [r["n_adv_correct"] for r in indep]


def test_pgd_agrees_with_torchattacks(trained) -> None:
    """An independent implementation with the same steps and step size agrees within max(3 images, 1%)."""
    import torchattacks

    m, x, y = trained
    eps, steps, alpha = 0.03, 10, 0.0075
    cc = predict(m, x) == y.numpy()
    ours = evaluate_attack(m, x, y, "pgd", {"steps": steps, "step_size": alpha}, [eps], mode="independent")
    ta = torchattacks.PGD(m, eps=eps, alpha=alpha, steps=steps, random_start=True)
    torch.manual_seed(0)
    theirs = (predict(m, ta(x, y)) == y.numpy()) & cc
    assert abs(int(theirs.sum()) - ours.metrics()[0]["n_adv_correct"]) <= max(3, len(y) // 100)


def test_adv_accuracy_counts_only_clean_correct_samples(trained) -> None:
    m, x, y = trained
    res = evaluate_attack(m, x, y, "pgd", {"steps": 5}, [0.01, 0.03, 0.05], seed=1)
    cc = res.clean_correct
    for i, row in enumerate(res.metrics()):
        assert row["n_adv_correct"] <= row["n_clean_correct"]
        assert row["n_adv_correct"] == int((cc & ~res.fooled[i]).sum())
    # Never attacked: samples misclassified clean are never marked fooled.
    assert not res.fooled[:, ~cc].any()
    # Sweep mode is monotone by construction for an iterative attack.
    accs = [r["n_adv_correct"] for r in res.metrics()]
    assert accs == sorted(accs, reverse=True)


def test_sweep_and_independent_pgd_agree(trained) -> None:
    m, x, y = trained
    grid = [0.01, 0.02, 0.03]
    a = [r["n_adv_correct"] for r in evaluate_attack(m, x, y, "pgd", {"steps": 10}, grid, mode="sweep").metrics()]
    b = [
        r["n_adv_correct"]
        for r in evaluate_attack(m, x, y, "pgd", {"steps": 10}, grid, mode="independent", seed=1).metrics()
    ]
    assert all(abs(i - j) <= 3 for i, j in zip(a, b, strict=True)), (a, b)


def test_per_sample_outcomes_reproduce_the_metrics(trained) -> None:
    m, x, y = trained
    grid = [0.01, 0.03]
    res = evaluate_attack(m, x, y, "pgd", {"steps": 3}, grid)
    samples = res.samples()
    for i, row in enumerate(res.metrics()):
        ok = sum(1 for s in samples if s["clean_correct"] and not (s["fooled_mask"] >> i) & 1)
        assert ok == row["n_adv_correct"]
    conf = res.confusion()
    assert sum(c["count"] for c in conf if c["eps"] == 0.03) == len(y)
    assert np.all(res.adv_pred[:, ~res.clean_correct] == res.clean_pred[~res.clean_correct])
