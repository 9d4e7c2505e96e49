"""DeepFool: batched, minimal, projected per epsilon; agrees with a per-image reference (torchattacks for L2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rttui.engine.attacks.deepfool import deepfool
from rttui.engine.evaluate import evaluate_attack, predict


def _clean_correct(trained, k: int):
    m, x, y = trained
    cc = torch.as_tensor(predict(m, x) == y.numpy())
    return m, x[cc][:k], y[cc][:k]


def test_deepfool_l2_batched_agrees_with_torchattacks_per_image(trained) -> None:
    import torchattacks

    m, xs, ys = _clean_correct(trained, 5)
    xa, fooled = deepfool(m, xs, ys, steps=50, overshoot=0.02, norm="l2")
    ref = torchattacks.DeepFool(m, steps=50, overshoot=0.02)(xs, ys)
    m.zero_grad(set_to_none=True)  # torchattacks leaves .grad on the weights; ours must not (checked below)
    assert fooled.all()
    # Same iterates (labels of points this close to the boundary are not compared: the overshoot is tiny).
    ours, theirs = ((a - xs).flatten(1).norm(dim=1) for a in (xa, ref))
    assert torch.allclose(ours, theirs, rtol=1e-3, atol=1e-5), (ours, theirs)


def test_deepfool_linf_batched_agrees_with_per_image_runs(trained) -> None:
    m, xs, ys = _clean_correct(trained, 5)
    xa, fooled = deepfool(m, xs, ys, steps=50, norm="linf")
    singles = [deepfool(m, xs[i : i + 1], ys[i : i + 1], steps=50, norm="linf") for i in range(len(xs))]
    ref = torch.cat([a for a, _ in singles])
    assert torch.equal(fooled, torch.cat([f for _, f in singles]))
    assert torch.allclose(xa, ref, atol=1e-5)


@pytest.mark.parametrize(("norm", "mode"), [("linf", "sweep"), ("l2", "independent")])
def test_deepfool_projected_accuracy_never_rises_with_eps(trained, norm: str, mode: str) -> None:
    m, x, y = trained
    grid = [0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.3] if norm == "linf" else [0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
    res = evaluate_attack(m, x, y, "deepfool", {"norm": norm, "steps": 50}, grid, mode=mode)
    rows = res.metrics()
    accs = [r["n_adv_correct"] for r in rows]
    assert accs == sorted(accs, reverse=True), accs
    assert accs[0] == rows[0]["n_clean_correct"]  # eps 0 leaves accuracy unchanged
    assert accs[-1] < accs[1]  # and the attack does something
    for r in rows:
        assert r["max_perturbation"] <= r["eps"] + 1e-5
        assert r["steps"] == 50 and r["path"].endswith("batched")


def test_deepfool_stores_each_samples_minimal_norm(trained) -> None:
    m, x, y = trained
    grid = [0.01, 0.03, 0.1]
    res = evaluate_attack(m, x, y, "deepfool", {"norm": "linf"}, grid)
    samples = res.samples()
    cc = res.clean_correct
    norms = np.array([s["min_norm"] if s["min_norm"] is not None else np.nan for s in samples])
    assert np.isfinite(norms[cc]).mean() > 0.9 and np.isnan(norms[~cc]).all()
    for i, eps in enumerate(grid):
        # A sample whose minimal perturbation fits in the ball is fooled there (projection is the identity).
        assert res.fooled[i][cc & (norms <= eps - 1e-6)].all()


def test_deepfool_leaves_no_gradients_and_restores_mode(trained) -> None:
    m, x, y = trained
    m.zero_grad(set_to_none=True)
    m.train()
    deepfool(m, x[:6], y[:6], steps=5)
    assert all(p.grad is None for p in m.parameters())
    assert m.training
    m.eval()
