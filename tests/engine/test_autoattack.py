"""AutoAttack through torchattacks: the class-count traps are caught, it is seeded and at least as strong as PGD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rttui.engine.evaluate import evaluate_attack, predict
from rttui.engine.models import create_model
from rttui.errors import StudyError


def test_autoattack_refuses_models_with_fewer_than_4_classes() -> None:
    torch.manual_seed(0)
    m = create_model({"name": "test_vit", "kwargs": {"patch_size": 4}}, 3, 16).eval()
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    with pytest.raises(StudyError, match="at least 4"):
        evaluate_attack(m, x, y, "autoattack", {}, [0.03])


def test_autoattack_is_seeded_in_its_ball_and_not_weaker_than_pgd(trained) -> None:
    """Small on purpose: at this eps some images survive APGD-CE, so APGD-T, FAB-T and Square run too
    (the path where a wrong n_classes would raise)."""
    m, x, y = trained
    cc = predict(m, x) == y.numpy()
    xs, ys = x[cc][:3], y[cc][:3]
    eps = [0.0, 0.004]
    a = evaluate_attack(m, xs, ys, "autoattack", {}, eps, seed=1)
    b = evaluate_attack(m, xs, ys, "autoattack", {}, eps, seed=1)
    pgd = evaluate_attack(m, xs, ys, "pgd", {"steps": 10}, eps, seed=1)
    assert np.array_equal(a.adv_pred, b.adv_pred)
    rows = a.metrics()
    assert rows[0]["n_adv_correct"] == rows[0]["n_clean_correct"]
    assert rows[1]["max_perturbation"] <= eps[1] + 1e-6
    assert rows[1]["n_adv_correct"] <= pgd.metrics()[1]["n_adv_correct"]
    assert all(p.grad is None for p in m.parameters())
