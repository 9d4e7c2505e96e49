"""DeepFool: batched, minimal (closed form on a linear model), projected per epsilon, equal to per-image runs, and
never weaker than Foolbox's DeepFool (the reference implementation) per sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rttui.engine.attacks.base import perturbation_norm
from rttui.engine.attacks.deepfool import STEP_SLACK, deepfool
from rttui.engine.evaluate import evaluate_attack, predict


def _clean_correct(trained, k: int):
    m, x, y = trained
    cc = torch.as_tensor(predict(m, x) == y.numpy())
    return m, x[cc][:k], y[cc][:k]


class Linear(torch.nn.Module):
    """A two-class linear classifier on 3x4x4 images: DeepFool's answer is known in closed form."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(48, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1) @ self.w - 0.5 * self.w.sum()
        return torch.stack([s, -s], 1)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_deepfool_on_a_linear_model_is_the_closed_form_minimal_perturbation(norm: str) -> None:
    """One step reaches the boundary (plus the slack); the overshoot scales the total:
    ||r|| = 1.02 (|f| / ||w||_dual + slack)."""
    m = Linear()
    x = 0.3 + 0.4 * torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(1))  # away from the box
    y = m(x).argmax(1)
    xa, fooled = deepfool(m, x, y, steps=50, overshoot=0.02, norm=norm)
    assert fooled.all()
    margin = (m(x)[:, 0] - m(x)[:, 1]).abs() / 2  # |f_k - f_label| / 2 for logits (s, -s)
    w = m.w.detach()
    dual = w.abs().sum() if norm == "linf" else w.norm()
    got = (xa - x).flatten(1).abs().amax(1) if norm == "linf" else (xa - x).flatten(1).norm(dim=1)
    want = 1.02 * (margin / dual + STEP_SLACK)
    assert torch.allclose(got, want, rtol=1e-4), (got, want)
    assert (m(xa).argmax(1) != y).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_deepfool_fools_every_image_of_a_standard_model(trained, norm: str) -> None:
    """Box-aware steps with the overshoot on the total do not stall on saturated digit pixels (torchattacks'
    per-step overshoot converges onto the boundary there); every example really is misclassified."""
    m, xs, ys = _clean_correct(trained, 40)
    xa, fooled = deepfool(m, xs, ys, steps=50, norm=norm)
    assert fooled.all()
    with torch.no_grad():
        assert (m(xa).argmax(1) != ys).all()
    assert float(xa.min()) >= 0 and float(xa.max()) <= 1


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_deepfool_batched_agrees_with_per_image_runs(trained, norm: str) -> None:
    m, xs, ys = _clean_correct(trained, 5)
    xa, fooled = deepfool(m, xs, ys, steps=50, norm=norm)
    singles = [deepfool(m, xs[i : i + 1], ys[i : i + 1], steps=50, norm=norm) for i in range(len(xs))]
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


def _foolbox_deepfool(m, xs, ys, norm: str) -> torch.Tensor:
    fb = pytest.importorskip("foolbox")
    attack = {"linf": fb.attacks.LinfDeepFoolAttack, "l2": fb.attacks.L2DeepFoolAttack}[norm]
    flags = [(p, p.requires_grad) for p in m.parameters()]
    try:
        return attack(steps=50, overshoot=0.02, candidates=10).run(
            fb.PyTorchModel(m, bounds=(0, 1)), xs, fb.criteria.Misclassification(ys)
        )
    finally:
        m.zero_grad(set_to_none=True)
        for p, f in flags:
            p.requires_grad_(f)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_deepfool_is_never_weaker_than_foolbox_per_sample(trained, norm: str) -> None:
    """Same steps, overshoot and candidates: every image Foolbox fools, rttui fools with a perturbation no larger
    (beyond float noise: batch composition changes convolution rounding, ~1e-7); the plain variant alone is
    Foolbox's step and matches it up to that noise, while box-aware alone comes out larger on most images."""
    m, xs, ys = _clean_correct(trained, 16)
    xf = _foolbox_deepfool(m, xs, ys, norm)
    with torch.no_grad():
        fb_ok = m(xf).argmax(1) != ys
    assert fb_ok.sum() >= 13  # Foolbox does its job here, so the comparison covers most images
    fb_norm = perturbation_norm(xf, xs, norm)
    xa, ok = deepfool(m, xs, ys, steps=50, overshoot=0.02, norm=norm, candidates=10)
    ours = perturbation_norm(xa, xs, norm)
    assert ok[fb_ok].all()
    excess = (ours - fb_norm)[fb_ok]
    assert float(excess.max()) <= 1e-5 * float(fb_norm.max()) + 1e-7, float(excess.max())
    plain, plain_ok = deepfool(m, xs, ys, steps=50, norm=norm, variants=("plain",))
    assert not (plain_ok & ~ok).any()  # keeping the better variant loses no image the plain one fools
    assert torch.allclose(plain, xf, atol=1e-6)
    box, box_ok = deepfool(m, xs, ys, steps=50, norm=norm, variants=("box_aware",))
    both = box_ok & fb_ok
    assert (perturbation_norm(box, xs, norm)[both] > fb_norm[both] * (1 + 1e-4)).float().mean() > 0.5
