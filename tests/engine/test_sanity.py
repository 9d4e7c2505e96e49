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


class _Noisy(nn.Module):
    """A randomised defence: noise on every pass, even in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x + 0.1 * torch.randn_like(x))


def test_the_reference_autoattack_checks_are_stored_checks() -> None:
    """pyautoattack's own model checks (randomised outputs, probabilities for logits, zero gradients) ride along
    every evaluated run; a clean linear classifier passes them, and the caller's RNG and tracer are kept."""
    import sys

    x, y = torch.rand(8, 3, 4, 4), torch.zeros(8, dtype=torch.long)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    rng, tracer = torch.get_rng_state(), sys.gettrace()
    ok = sanity.check_reference_model(lin, x, y)
    assert ok["level"] == "ok" and "randomised outputs" in ok["message"]
    assert torch.equal(torch.get_rng_state(), rng) and sys.gettrace() is tracer
    noisy = sanity.check_reference_model(_Noisy(), x, y)
    assert noisy["level"] == "warning" and "randomized defense" in noisy["message"]
    probs = sanity.check_reference_model(nn.Sequential(lin, nn.Softmax(dim=1)), x, y)
    assert probs["level"] == "warning" and "probability distribution" in probs["message"]
    assert "zero gradient" in sanity.check_reference_model(_Masked(), x, y)["message"]
    assert "flags_doc" not in probs["message"]


def test_the_reference_autoattack_warnings_of_a_run_become_a_check() -> None:
    """Square (black-box) beating the white-box attacks is the reference's warning at run time: stored as a
    warning check of that evaluation; an evaluation it did not warn about carries none."""
    warned = "Square Attack has decreased the robust accuracy of 2.00%. This might indicate ... See flags_doc.md"
    (c,) = sanity.check_reference_warnings("autoattack", {"reference_warnings": [warned]})
    assert c["level"] == "warning" and "Square Attack has decreased" in c["message"] and "flags_doc" not in c["message"]
    assert sanity.check_reference_warnings("autoattack", {"version": "standard"}) == []
