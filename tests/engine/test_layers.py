"""Layer analysis: linear CKA against known cases, gradient flow against a hand-computed network, auto freeze."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rttui.engine import layers
from rttui.engine.models import create_model
from rttui.engine.strategies import apply_strategy, depth_groups, inner, resolve_freeze
from rttui.errors import StudyError


def _feats(n: int = 50, d: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---- linear CKA -------------------------------------------------------------------------------------------------
def test_cka_identical_features_is_one() -> None:
    x = _feats()
    assert layers.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    # Conv-shaped features are flattened per sample.
    img = torch.randn(12, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    assert layers.linear_cka(img, img.clone()) == pytest.approx(1.0, abs=1e-6)


def test_cka_orthogonal_features_is_zero() -> None:
    x = _feats(60, 8)
    xc = x - x.mean(0)
    z = _feats(60, 5, seed=3)
    zc = z - z.mean(0)
    # Remove from z everything x's centered columns span: the two feature sets are orthogonal after centering.
    q, _ = torch.linalg.qr(xc)
    y = zc - q @ (q.T @ zc)
    assert (xc.T @ y).abs().max() < 1e-10
    assert abs(layers.linear_cka(x, y)) < 1e-10
    # Independent random features are far from identical but not orthogonal: CKA strictly between 0 and 1.
    v = layers.linear_cka(x, z)
    assert 0.01 < v < 0.9


def test_cka_invariant_to_isotropic_scaling_and_orthogonal_transforms() -> None:
    x, y = _feats(40, 10), _feats(40, 6, seed=5) + 0.5 * _feats(40, 10)[:, :6]
    base = layers.linear_cka(x, y)
    assert layers.linear_cka(3.7 * x, y) == pytest.approx(base, rel=1e-10)
    assert layers.linear_cka(x, 0.01 * y) == pytest.approx(base, rel=1e-10)
    q, _ = torch.linalg.qr(_feats(10, 10, seed=9))
    assert layers.linear_cka(x @ q, y) == pytest.approx(base, rel=1e-10)
    # Adding a constant to every sample (a translation) changes nothing either: the Grams are centered.
    assert layers.linear_cka(x + 5.0, y) == pytest.approx(base, rel=1e-8)
    # ...but an anisotropic scaling does change it.
    s = torch.ones(10, dtype=torch.float64)
    s[0] = 30.0
    assert layers.linear_cka(x * s, y) != pytest.approx(base, rel=1e-3)


def test_cka_matches_feature_space_formula_and_squared_correlation() -> None:
    x, y = _feats(30, 7, seed=11), _feats(30, 4, seed=12)
    xc, yc = (x - x.mean(0)).numpy(), (y - y.mean(0)).numpy()
    # Kornblith et al. (2019), eq. for linear CKA in feature space: ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F).
    want = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert layers.linear_cka(x, y) == pytest.approx(want, rel=1e-10)
    # One-dimensional features: linear CKA is the squared Pearson correlation.
    a, b = x[:, 0], x[:, 0] + 0.7 * y[:, 0]
    r = np.corrcoef(a.numpy(), b.numpy())[0, 1]
    assert layers.linear_cka(a[:, None], b[:, None]) == pytest.approx(r**2, rel=1e-10)


def test_cka_of_a_constant_representation_is_nan() -> None:
    assert math.isnan(layers.linear_cka(torch.ones(5, 3), _feats(5, 3)))


# ---- gradient flow ---------------------------------------------------------------------------------------------
class TwoLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 3, bias=False)
        self.fc2 = nn.Linear(3, 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


def test_gradient_flow_matches_a_hand_computed_network() -> None:
    torch.manual_seed(0)
    net = TwoLinear()
    x = torch.randn(7, 4)
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    # By hand: logits = X W1^T W2^T; d(mean CE)/d(logits) = (softmax - onehot) / n = D;
    # dL/dW2 = D^T H with H = X W1^T; dL/dW1 = (D W2)^T X.
    w1, w2, xn = net.fc1.weight.detach().numpy(), net.fc2.weight.detach().numpy(), x.numpy().astype(np.float64)
    h = xn @ w1.T
    logits = h @ w2.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d = (p - np.eye(2)[y.numpy()]) / len(y)
    g2, g1 = d.T @ h, (d @ w2).T @ xn
    net.fc1.weight.requires_grad_(False)  # a frozen group still gets its gradient measured
    norms, extra = layers.gradient_flow(net, [["fc1.weight"], ["fc2.weight"]], x, y, batch_size=3)
    assert norms == pytest.approx([np.linalg.norm(g1), np.linalg.norm(g2)], rel=1e-5)
    assert extra == 0.0
    # Nothing left behind: no .grad, the requires_grad flags and the mode as they were.
    assert net.fc1.weight.grad is None and net.fc2.weight.grad is None
    assert not net.fc1.weight.requires_grad and net.fc2.weight.requires_grad
    assert net.training


def test_gradient_flow_keeps_batchnorm_statistics_and_weights() -> None:
    torch.manual_seed(0)
    m = create_model({"name": "test_resnet", "kwargs": {}}, 5, 16)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x, y = torch.rand(20, 3, 16, 16), torch.randint(0, 5, (20,))
    snap = layers.snapshot(m, x, y, batch_size=8)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert all(p.grad is None for p in m.parameters())
    assert len(snap.grad_norms) == len(depth_groups(m)) and all(v > 0 for v in snap.grad_norms)
    # Chunking does not change the numbers: the loss is the mean over the whole fixed batch.
    assert layers.snapshot(m, x, y, batch_size=20).grad_norms == pytest.approx(snap.grad_norms, rel=1e-4)


def test_cka_per_group_is_one_for_frozen_groups_after_fine_tuning() -> None:
    from rttui.engine.data import Split
    from rttui.engine.train import fit

    torch.manual_seed(0)
    m = create_model({"name": "test_resnet", "kwargs": {}}, 5, 16)
    x, y = torch.rand(48, 3, 16, 16), torch.randint(0, 5, (48,))
    run = layers.RunAnalysis(m, {"name": "layer_freezing", "params": {"freeze": 2}}, x, y, n=32)
    st = apply_strategy(m, run.strategy)
    fit(m, Split(x, y), {"epochs": 2, "lr": 5e-3, "batch_size": 16}, 0, st)
    recs = run.finish(m, st.frozen_groups).rows()
    assert [r["frozen"] for r in recs] == [i < 2 for i in range(len(recs))]
    for r in recs:
        assert r["n_images"] == 32 and r["batch"] == "target train[:32]"
        if r["frozen"]:
            assert r["cka"] == pytest.approx(1.0, abs=1e-9)
    assert min(r["cka"] for r in recs if not r["frozen"]) < 0.9999
    assert sum(r["grad_share"] for r in recs) < 1.0


# ---- automatic freeze depth -------------------------------------------------------------------------------------
def test_auto_freeze_rule_on_known_shares() -> None:
    # Squared norms 1, 1, 1, 4, 9 and a head of 84: total 100, shares .01 .01 .01 .04 .09.
    norms, head = [1.0, 1.0, 1.0, 2.0, 3.0], math.sqrt(84.0)
    assert layers.grad_shares(norms, head) == pytest.approx([0.01, 0.01, 0.01, 0.04, 0.09])
    assert layers.auto_freeze_depth(norms, head, 0.1) == 4  # .07 <= .1, .16 > .1
    assert layers.auto_freeze_depth(norms, head, 0.03) == 3
    assert layers.auto_freeze_depth(norms, head, 0.005) == 0
    assert layers.auto_freeze_depth(norms, head, 1.0) == 5
    # The prefix stops at the first group that crosses the threshold, even if later groups carry little.
    assert layers.auto_freeze_depth([0.0, 9.0, 0.0], 1.0, 0.5) == 1


@pytest.mark.parametrize("name,kwargs", [("test_resnet", {}), ("test_vit", {"patch_size": 4})])
def test_auto_freeze_freezes_exactly_the_groups_the_rule_names(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    m = create_model({"name": name, "kwargs": kwargs}, 5, 16)
    x, y = torch.rand(40, 3, 16, 16), torch.randint(0, 5, (40,))
    share = 0.5
    run = layers.RunAnalysis(m, {"name": "layer_freezing", "params": {"freeze": "auto", "auto_share": share}}, x, y)
    norms, head = run.before.grad_norms, run.before.head_grad_norm
    # The documented rule, recomputed here from the measured norms.
    sq = [v * v for v in norms]
    total = sum(sq) + head * head
    k, cum = 0, 0.0
    for v in sq:
        cum += v / total
        if cum > share:
            break
        k += 1
    assert run.strategy["params"]["freeze"] == k
    assert run.info["freeze_auto"]["depth"] == k and run.info["freeze_auto"]["auto_share"] == share
    st = apply_strategy(m, run.strategy)
    groups = depth_groups(m)
    frozen = {n for n, p in inner(m).named_parameters() if not p.requires_grad}
    assert frozen == {n for g in groups[:k] for n in g}
    assert st.frozen_groups == k


def test_auto_freeze_is_refused_without_the_analysis() -> None:
    with pytest.raises(StudyError, match="'auto' needs the layer analysis"):
        resolve_freeze("auto", 6)
    assert resolve_freeze("all", 6) == 6


def test_auto_freeze_default_threshold_agrees_with_the_catalog() -> None:
    from rttui.study.catalog import STRATEGIES

    assert STRATEGIES["layer_freezing"].params["auto_share"].default == layers.AUTO_SHARE
