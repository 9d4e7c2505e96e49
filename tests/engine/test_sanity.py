"""The sanity gate flags weak or broken attacks: accuracy left at a huge eps, masked (zero/NaN) gradients."""

from __future__ import annotations

import torch
from torch import nn

from rttui.engine import sanity


def _row(eps: float, adv: int, norm: str = "linf") -> dict:
    return {"eps": eps, "norm": norm, "n": 100, "n_clean_correct": 90, "n_adv_correct": adv}


def test_pgd_nonzero_accuracy_at_huge_eps_is_a_warning() -> None:
    checks = {c["check"]: c for c in sanity.check_eval("pgd", [_row(0.03, 10), _row(0.3, 4)])}
    assert checks["zero_at_huge_eps"]["level"] == "warning" and "0.3" in checks["zero_at_huge_eps"]["message"]
    ok = {c["check"]: c for c in sanity.check_eval("pgd", [_row(0.03, 10), _row(0.3, 0)])}
    assert ok["zero_at_huge_eps"]["level"] == "ok"
    assert "zero_at_huge_eps" not in {c["check"] for c in sanity.check_eval("pgd", [_row(0.03, 10)])}


class _Masked(nn.Module):
    """A classifier whose output ignores its input (gradients exactly zero), or is NaN."""

    def __init__(self, nan: bool = False) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))
        self.nan = nan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = (x.flatten(1)[:, :3] * 0) + self.w
        return out * float("nan") if self.nan else out


def test_zero_or_nan_input_gradients_are_flagged_as_masking() -> None:
    x, y = torch.rand(8, 3, 4, 4), torch.zeros(8, dtype=torch.long)
    zero = sanity.check_gradients(_Masked(), x, y)
    assert zero["level"] == "warning" and "8 all-zero" in zero["message"]
    nan = sanity.check_gradients(_Masked(nan=True), x, y)
    assert nan["level"] == "warning" and "NaN" in nan["message"]
    lin = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    assert sanity.check_gradients(lin, x, y)["level"] == "ok"
    assert all(p.grad is None for p in lin.parameters())
