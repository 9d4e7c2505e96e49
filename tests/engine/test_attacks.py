"""Attacks live in [0, 1] pixel space, respect their epsilon ball and leave the model as they found it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rttui.engine.attacks.base import perturbation_norm
from rttui.engine.attacks.fgsm import fgsm, fgsm_grid
from rttui.engine.attacks.pgd import pgd
from rttui.engine.evaluate import evaluate_attack, predict


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
    sweep = evaluate_attack(m, x, y, "fgsm", {}, grid, mode="sweep")
    indep = evaluate_attack(m, x, y, "fgsm", {}, grid, mode="independent")
    assert [r["n_adv_correct"] for r in sweep.metrics()] == [r["n_adv_correct"] for r in indep.metrics()]
    assert np.array_equal(sweep.adv_pred, indep.adv_pred)
    # The sweep's shared forward pass gives the same clean predictions as a separate clean evaluation.
    assert np.array_equal(sweep.clean_pred, predict(m, x))
    given = evaluate_attack(m, x, y, "fgsm", {}, grid, mode="sweep", clean_pred=predict(m, x))
    assert np.array_equal(given.fooled, sweep.fooled)


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


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_sweep_and_independent_agree_within_one_sample(trained, norm: str) -> None:
    """Per-sample random starts make both modes start every sample from the same point at the same seed."""
    m, x, y = trained
    grid = [0.005, 0.01, 0.02] if norm == "linf" else [0.05, 0.1, 0.2]
    params = {"steps": 10, "norm": norm}
    a = [r["n_adv_correct"] for r in evaluate_attack(m, x, y, "pgd", params, grid, mode="sweep", seed=3).metrics()]
    b = [
        r["n_adv_correct"] for r in evaluate_attack(m, x, y, "pgd", params, grid, mode="independent", seed=3).metrics()
    ]
    assert all(abs(i - j) <= 1 for i, j in zip(a, b, strict=True)), (a, b)
    assert a[0] > 0  # the grid is not trivially all-fooled, so the comparison means something


def test_pgd_restarts_follow_the_seed(trained) -> None:
    m, x, y = trained
    params = {"steps": 3, "restarts": 3}
    r1 = evaluate_attack(m, x, y, "pgd", params, [0.005, 0.01], seed=5)
    r2 = evaluate_attack(m, x, y, "pgd", params, [0.005, 0.01], seed=5)
    assert np.array_equal(r1.adv_pred, r2.adv_pred)
    one = evaluate_attack(m, x, y, "pgd", {"steps": 3, "restarts": 1}, [0.005, 0.01], seed=5)
    # A sample fooled by the first restart is fooled by the restarted attack too (restart 0 is the same start).
    assert not (one.fooled & ~r1.fooled).any()
    assert r1.metrics()[0]["restarts"] == 3


def test_pgd_warm_start_sweep_stays_in_the_ball_and_agrees(trained) -> None:
    m, x, y = trained
    grid = [0.005, 0.01, 0.02]
    warm = evaluate_attack(m, x, y, "pgd", {"steps": 10, "warm_start": True}, grid, seed=2)
    cold = evaluate_attack(m, x, y, "pgd", {"steps": 10}, grid, seed=2)
    assert "warm_start" in warm.path and "warm_start" not in cold.path
    for row, eps in zip(warm.metrics(), grid, strict=True):
        assert row["max_perturbation"] <= eps + 1e-6
    # Warm start only changes where later epsilons start: within random-start noise of the cold sweep.
    wa, ca = (np.array([r["n_adv_correct"] for r in res.metrics()]) for res in (warm, cold))
    assert np.abs(wa - ca).max() <= max(3, len(y) // 100), (wa, ca)


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


def test_predicted_labels_attack_every_image_and_report_data_wait(trained) -> None:
    """labels="predicted" attacks each image away from the model's own prediction (all count as correct);
    with true labels only the correctly classified ones are attacked. Both report their data time."""
    m, x, y = trained
    true = evaluate_attack(m, x, y, "pgd", {"steps": 2}, [0.03], seed=0)
    pred = evaluate_attack(m, x, y, "pgd", {"steps": 2}, [0.03], seed=0, labels="predicted")
    rt, rp = true.metrics()[0], pred.metrics()[0]
    assert rt["n_clean_correct"] < len(y) == rp["n_clean_correct"] == rp["n"]
    assert "predicted_labels" in rp["path"] and "predicted_labels" not in rt["path"]
    assert np.array_equal(pred.labels, predict(m, x))
    for res in (true, pred):
        assert 0 < res.data_seconds < res.seconds
    with pytest.raises(ValueError, match="labels must be"):
        evaluate_attack(m, x, y, "fgsm", {}, [0.03], labels="gold")
