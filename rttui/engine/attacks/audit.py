"""Attack-strength audit: was the stored attack strong enough? (Carlini et al., "On evaluating adversarial
robustness": more steps, more restarts, does accuracy keep falling?)

Given what an evaluation found (which images each epsilon fooled), `audit_attack` draws a seeded subsample of the
images that SURVIVED the stored attack at each epsilon, attacks them again with a clearly stronger budget, and
counts how many the stronger attack fools. Pure: no store, no events, a plain dict out.

The flag rule protects the accuracy the evaluation reports. At an eps with S survivors (the stored robust count)
of n test images, `reattacked` = r of them chosen at random got the stronger attack's verdict and f fell, so the
stored count overstates the stronger attack's by an estimated S f / r images. The eps is flagged when

    S * f / r  >  max(3, n / 100)      (images; in accuracy: S f / (r n) > max(3 / n, 1%))

the tolerance within which two independent implementations of one attack agree (FACTS.md); with r = S (every
survivor re-attacked) it reads f > max(3, n / 100) exactly. So a cell of at most that many survivors is never
flagged (its accuracy cannot be off by more than the tolerance), while a large cell is flagged for a small fooled
share: 3 of 60 re-attacked of 400 survivors is 20 images overstated. The rule is decided on a sample, so it can
miss (`audit_settings.miss_probability`, hypergeometric; n = 500, tolerance 5 images, default subsample 50):
with 171 survivors, a true fooled share of 6% (10 images overstated, twice the tolerance) goes unflagged with
probability 0.15, 10% (17 images) with 0.02; with 100 survivors, 6% (6 images, just over) with 0.34; with 400
survivors (subsample 100) 3% (12 images) with 0.15. A flag it raises wrongly costs nothing but time: escalation
re-attacks every survivor and the stored flag is the exact count's.

Escalation (`escalate`, on by default): a flagged eps has its remaining survivors re-attacked, so `fooled_ids`
(test indices) is the stronger attack's complete answer there and the worst case over both attacks is exact. Where
an eps is not escalated (not flagged, or escalation off) the row estimates the stronger attack's robust count,
S (r - f) / r test images, with a 95% Clopper-Pearson interval (`audit_settings.estimate`).

The stronger attack, on each image still standing, in this order:
1. APGD-CE from the reference AutoAttack code (`pyautoattack`: adaptive step size, momentum, the paper's
   checkpoints), `apgd_iters_factor` x the stored attack's steps iterations (at least `min_iters`), one run:
   APGD-CE-20 for PGD-10 and DeepFool, APGD-CE-10 for FGSM's single step;
2. optionally (`pgd = true`) PGD on the cross-entropy with `steps_factor` x the stored steps, step size
   2.5 eps / steps (the steps travel 2.5 eps, Madry et al.'s rule), `restarts` random starts drawn per sample
   from a seed stream of its own, stopping per image once it is misclassified.
Why APGD-CE first and PGD off by default, measured on the quickstart's models (seed 0, PGD-10's survivors,
every survivor re-attacked): test_resnet/full at eps 0.01, 171 survivors: APGD-CE-100 fooled 15, PGD-100 with
5 restarts 5 (at 5x APGD's cost), both together 15; test_vit2/full at 0.01, 196 survivors: 7, 4, together 8;
at 0.03, 25 survivors: 10, 2, together 11. APGD-CE at 20 iterations (a quarter of APGD-100's time) found 11, 7
and 7 of those: still more than PGD-100 with 5 restarts at a twentieth of its cost. Hence the defaults (settings,
torch-free, in `rttui.engine.attacks.audit_settings`): APGD-CE at 2x the audited steps, at least 10 iterations; PGD off.

Cost. An image the stronger attack cannot fool costs its whole budget (apgd iterations, plus steps x restarts
with pgd on); the evaluation it audits spent steps x restarts on each image it attacked. What keeps the audit
cheap without weakening it: the subsample (`fraction` of the survivors, within [min_samples, max_samples]);
epsilons sharing batches of `batch_size` (each image at its own eps: the reference's iteration is elementwise in
eps, and each image's random start is drawn from (seed, image), so a batch's make-up changes no verdict); the
evaluation's memory layout (channels-last for a CNN); and nesting: an image the stronger attack fooled at a
smaller eps counts as fooled at every larger one without another attack (its example lies in the larger ball)
when the smaller eps's batch ran first. Survivors are nested the other way too (one surviving the stored attack
at 0.05 survived it at 0.03), but that gives no shortcut: the stronger attack failing at 0.05 says nothing
certain about 0.03, and reusing it would weaken the audit. Without escalation, `stop_when_flagged` re-attacks a
first `chunk` of each eps and stops an eps whose flag is already certain. `grad_steps`, `seconds` and their
`escalation_` twins report the cost; benchmarks/run.py measures it against the evaluation it audits.

Must never: leave the eps-ball or [0, 1], train the model, touch the caller's random state, or attack an image
the stored attack already fooled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rttui.engine.attacks.audit_settings import (
    apgd_iters,
    base_steps,
    estimate,
    flag_threshold,
    is_flagged,
    resolve,
    subsample_size,
    tolerance,
)
from rttui.engine.attacks.base import attack_mode, l2_norm, perturbation_norm, project
from rttui.engine.attacks.pgd import _mix, per_sample_start

PGD_TRAVEL = 2.5  # stronger PGD's step size = PGD_TRAVEL * eps / steps
AUDIT_SEED_SALT = 0xA0D17  # the audit's random starts and order differ from the stored attack's
BALL_TOLERANCE = 1e-5


def stronger_params(
    attack: str, params: dict[str, Any], norm: str, settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The stronger attack's full parameters (a plain dict, stored with the audit)."""
    s = resolve(settings)
    base = base_steps(attack, params)
    out: dict[str, Any] = {"audited_attack": attack, "base_steps": base, "norm": norm, "apgd": None, "pgd": None}
    if s["apgd"]:
        from rttui.engine.attacks.autoattack import reference_version

        out["apgd"] = {
            "implementation": "reference",
            "library": "pyautoattack",
            "library_version": reference_version(),
            "loss": "ce",
            "n_iter": apgd_iters(base, s),
            "n_restarts": 1,
            "rho": 0.75,
            "eot_iter": 1,
        }
    if s["pgd"]:
        steps = int(s["steps_factor"]) * base
        out["pgd"] = {
            "steps": steps,
            "rel_step_size": PGD_TRAVEL / steps,
            "restarts": int(s["restarts"]),
            "random_start": True,
            "early_stop": True,
            "loss": "ce",
        }
    out["order"] = [k for k in ("apgd", "pgd") if out[k]]
    out["stop_when_flagged"] = bool(s["stop_when_flagged"])
    return out


def _pgd_early_stop(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    ids: list[int],
    eps: float,
    norm: str,
    steps: int,
    restarts: int,
    seed: int,
    spent: list[int],
) -> torch.Tensor:
    """PGD with per-sample early stop at one eps: which samples it fooled (`spent[0]` counts gradient steps)."""
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    alpha = PGD_TRAVEL * eps / steps
    for r in range(restarts):
        act = (~fooled).nonzero().flatten()
        if not len(act):
            break
        xa = per_sample_start(x[act], [ids[i] for i in act.tolist()], eps, norm, seed, r)
        for t in range(steps + 1):
            last = t == steps
            xg = xa.detach().requires_grad_(not last)
            with torch.set_grad_enabled(not last):
                logits = model(xg)
                hit = logits.argmax(1) != y[act]
                if not last:
                    loss = nn.functional.cross_entropy(logits, y[act], reduction="sum")
                    (g,) = torch.autograd.grad(loss, xg)
                    spent[0] += len(act)
            if hit.any():
                fooled[act[hit]] = True
                keep = ~hit
                act, xa = act[keep], xa[keep]
                if not last:
                    g = g[keep]
            if last or not len(act):
                break
            step = g.sign() if norm == "linf" else g / l2_norm(g)
            xa = (x[act] + project(xa + alpha * step - x[act], eps, norm)).clamp(0, 1).detach()
            _check_ball(xa, x[act], torch.full((len(act),), eps, device=x.device), norm)
    return fooled


def reference_start(x: torch.Tensor, ids: list[int], eps: torch.Tensor, norm: str, seed: int) -> torch.Tensor:
    """The reference APGD's own random start, drawn per sample from (seed, sample) instead of from one global
    generator over the batch, so an image's outcome does not depend on which images share its batch: L-inf,
    uniform noise in [-1, 1] scaled so its largest pixel moves by eps; L2, a Gaussian direction of norm eps
    (`APGDAttack.attack_single_run`'s draw, per image). Clipping to [0, 1] is the reference's own."""
    ts = []
    for j in ids:
        g = torch.Generator().manual_seed(_mix(seed, int(j)))
        if norm == "linf":
            t = torch.rand(x.shape[1:], generator=g) * 2 - 1
            ts.append(t / (t.abs().max() + 1e-12))
        else:
            t = torch.randn(x.shape[1:], generator=g)
            ts.append(t / (t.norm() + 1e-12))
    t = torch.stack(ts).to(device=x.device, dtype=x.dtype)
    return x + eps.view(-1, *[1] * (x.dim() - 1)) * t


def _apgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, ids: list[int], eps: torch.Tensor, norm: str, n_iter: int, seed
) -> torch.Tensor:
    """The reference APGD-CE, one run from `reference_start`, each image at its own eps (`eps`, one per image:
    every use of eps in the reference's iteration is elementwise, so a batch may mix epsilons); returns which
    samples it fooled, checked by a forward pass of our own on examples checked to lie in their balls."""
    from pyautoattack.autopgd_base import APGDAttack

    from rttui.engine.attacks.autoattack import NORMS, quiet_reference

    with quiet_reference():
        atk = APGDAttack(
            model, n_iter=n_iter, norm=NORMS[norm], n_restarts=1, eps=float(eps.max()), seed=seed, loss="ce"
        )
        atk.eps = eps.view(-1, *[1] * (x.dim() - 1))
        atk.init_hyperparam(x)
        _, _, _, xa = atk.attack_single_run(x, y, reference_start(x, ids, eps, norm, seed))
        xa = xa.detach()
    _check_ball(xa, x, eps, norm)
    with torch.no_grad():
        return model(xa).argmax(1) != y


def _check_ball(xa: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str) -> None:
    if not len(x):
        return
    excess = float((perturbation_norm(xa, x, norm) - eps).max())
    if excess > BALL_TOLERANCE or float(xa.min()) < 0 or float(xa.max()) > 1:
        raise RuntimeError(f"audit attack left the {norm} eps-ball or [0, 1] (excess {excess:.3g})")


@dataclass
class _Cell:
    """One epsilon of an audit while it runs: its survivors in the audit's seeded order, how far down that order
    the stronger attack's verdict is known (`pos`), and what it found."""

    k: int  # position in the ascending grid
    eps: float
    order: np.ndarray  # survivors of the stored attack at eps, in the audit's seeded order
    n: int  # the planned subsample: the first n of `order`
    pos: int = 0  # order[:pos] have a verdict (re-attacked here, or fooled at a smaller eps)
    by: dict[str, int] = field(default_factory=lambda: {"smaller_eps": 0, "apgd": 0, "pgd": 0})
    fooled_ids: list[int] = field(default_factory=list)
    stopped: bool = False  # the subsample stopped early: its flag was certain (stop_when_flagged)
    escalated: bool = False
    grad_steps: list[int] = field(default_factory=lambda: [0, 0])  # subsample, escalation
    seconds: list[float] = field(default_factory=lambda: [0.0, 0.0])

    @property
    def fooled(self) -> int:
        return sum(self.by.values())


def audit_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    fooled: np.ndarray,
    clean_correct: np.ndarray,
    epsilons: list[float],
    attack: str,
    params: dict[str, Any],
    norm: str = "linf",
    seed: int = 0,
    settings: dict[str, Any] | None = None,
    batch_size: int = 250,
) -> dict[str, Any]:
    """Re-attack a seeded subsample of each epsilon's survivors with a stronger attack, and every survivor of a
    flagged epsilon when `escalate` is on (see the module doc).

    `fooled` (n_eps, n) and `clean_correct` (n,) are the stored evaluation's (AttackResult.fooled and
    .clean_correct), `epsilons` its grid in the same order, `attack` and `params` the stored attack's name and
    parameters (its steps size the stronger budget); `batch_size` images per call of the stronger attack (the
    evaluation's). Returns a plain, JSON-able dict:

        {"settings": {...}, "stronger": {...full parameters...}, "n_test": int, "tolerance": float,
         "flagged": bool, "flagged_eps": [eps, ...], "grad_steps": int, "seconds": float,
         "escalation_seconds": float,
         "per_eps": [{"eps", "n", "survivors", "reattacked", "survived_attack", "survived_stronger", "fooled_by":
                      {"smaller_eps", "apgd", "pgd"}, "fooled_ids", "tolerance", "threshold", "flagged",
                      "complete", "escalated", "est_adv_correct", "est_lo", "est_hi", "grad_steps",
                      "escalation_grad_steps", "seconds", "escalation_seconds"}, ...]}   # in `epsilons` order

    Per eps: `survivors` images survived the stored attack; the stronger attack's verdict is known for
    `reattacked` of them (the first in the audit's seeded order: a uniform random sample), `survived_stronger` of
    which it left standing; `fooled_ids` are the test indices it fooled. `n` is the planned subsample (`complete`:
    at least n got a verdict), `escalated` says every survivor got one. `flagged` is the rule of
    `audit_settings.is_flagged` (overstatement > `tolerance` images), `threshold` the most of `reattacked` it
    may fool unflagged. `est_*`: the stronger attack's robust count at eps, in test images (divide by `n_test`
    for an accuracy), with a 95% Clopper-Pearson interval; all three equal when every survivor got a verdict.
    `seconds` and `grad_steps` are the subsample's, `escalation_*` what escalation added.
    """
    t_all = time.perf_counter()
    s = resolve(settings)
    strong = stronger_params(attack, params, norm, s)
    dev = next(model.parameters()).device
    n_all = len(clean_correct)
    mixed = _mix(seed, AUDIT_SEED_SALT)
    rank = np.empty(n_all, dtype=np.int64)
    rank[np.random.default_rng(mixed).permutation(n_all)] = np.arange(n_all)
    audit_seed = mixed & 0x7FFFFFFF
    cells = []
    for k, (i, eps) in enumerate(sorted(enumerate(epsilons), key=lambda t: t[1])):
        surv = np.flatnonzero(clean_correct & ~fooled[i])
        order = surv[np.argsort(rank[surv], kind="stable")]
        cells.append(_Cell(k, float(eps), order, subsample_size(len(surv), s) if eps > 0 else 0))
    # fooled_at[j]: the smallest grid position at which the stronger attack fooled image j (len(cells): none)
    fooled_at = np.full(n_all, len(cells), dtype=np.int64)
    run = _Runner(model, x, y, dev, norm, strong, audit_seed, fooled_at, max(1, int(batch_size)))
    with attack_mode(model), _layout(model) as to_dev:
        run.to_dev = to_dev
        # The subsample, epsilons sharing batches (small subsamples need not mean small batches). Without
        # escalation, stop_when_flagged attacks a first chunk of each, then the rest of each whose flag is not yet
        # certain; with it, a flag means every survivor is re-attacked anyway, so the subsample goes in one pass.
        sequential = bool(s["stop_when_flagged"]) and not s["escalate"]
        if sequential:
            run.work([(c, min(c.n, int(s["chunk"]))) for c in cells], phase=0)
            for c in cells:
                c.stopped = c.pos < c.n and _certain(c, n_all)
        run.work([(c, c.n) for c in cells if not c.stopped], phase=0)
        # Escalation: every survivor of a flagged epsilon, so its fooled_ids are complete.
        up = [c for c in cells if s["escalate"] and c.pos < len(c.order) and _flagged(c, n_all)]
        for c in up:
            c.escalated = True
        run.work([(c, len(c.order)) for c in up], phase=1)
    rows = {c.k: _row(c, n_all) for c in cells}
    order = sorted(range(len(epsilons)), key=lambda i: epsilons[i])
    per_eps = [rows[order.index(i)] for i in range(len(epsilons))]
    return {
        "settings": s,
        "stronger": strong,
        "n_test": n_all,
        "tolerance": tolerance(n_all),
        "per_eps": per_eps,
        "flagged": any(r["flagged"] for r in per_eps),
        "flagged_eps": [r["eps"] for r in per_eps if r["flagged"]],
        "grad_steps": sum(r["grad_steps"] + r["escalation_grad_steps"] for r in per_eps),
        "seconds": round(time.perf_counter() - t_all, 4),
        "escalation_seconds": round(sum(r["escalation_seconds"] for r in per_eps), 4),
    }


@contextmanager
def _layout(model: nn.Module) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """The evaluation's memory layout (channels-last weights and inputs for a convolutional model: only the float
    rounding of convolutions changes), so the audit costs what the attack it audits costs per gradient step."""
    from rttui.engine.evaluate import channels_last

    dev = next(model.parameters()).device
    with channels_last(model) as nhwc:

        def to_dev(t: torch.Tensor) -> torch.Tensor:
            t = t.to(dev)
            return t.contiguous(memory_format=torch.channels_last) if nhwc and t.ndim == 4 else t

        yield to_dev


def _certain(c: _Cell, n_test: int) -> bool:
    """The planned subsample will be flagged whatever its remaining images show (fooled counts only grow)."""
    return is_flagged(len(c.order), c.n, c.fooled, n_test)


def _flagged(c: _Cell, n_test: int) -> bool:
    return is_flagged(len(c.order), c.pos, c.fooled, n_test)


def _row(c: _Cell, n_test: int) -> dict[str, Any]:
    surv, r, f = len(c.order), c.pos, c.fooled
    # At eps 0 the ball is a point: no attack changes a prediction, so the count is exact.
    est = (float(surv),) * 3 if c.eps == 0 else estimate(surv, r, f)
    return {
        "eps": c.eps,
        "n": int(c.n),
        "survivors": surv,
        "reattacked": int(r),
        "survived_attack": int(r),
        "survived_stronger": int(r - f),
        "fooled_by": dict(c.by),
        "fooled_ids": sorted(c.fooled_ids),
        "tolerance": tolerance(n_test),
        "threshold": flag_threshold(surv, r, n_test),
        "flagged": is_flagged(surv, r, f, n_test),
        "complete": bool(r >= c.n),
        "escalated": bool(c.escalated),
        "est_adv_correct": round(est[0], 4),
        "est_lo": round(est[1], 4),
        "est_hi": round(est[2], 4),
        "grad_steps": c.grad_steps[0],
        "escalation_grad_steps": c.grad_steps[1],
        "seconds": round(c.seconds[0], 4),
        "escalation_seconds": round(c.seconds[1], 4),
    }


@dataclass
class _Runner:
    """Attacks (epsilon, image) pairs in batches that mix epsilons, recording each verdict in its cell."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    dev: torch.device
    norm: str
    strong: dict[str, Any]
    seed: int
    fooled_at: np.ndarray
    batch: int
    to_dev: Callable[[torch.Tensor], torch.Tensor] | None = None

    def work(self, todo: list[tuple[_Cell, int]], phase: int) -> None:
        """Give a verdict to each cell's survivors up to the position asked for, ascending in eps, so an image the
        stronger attack fooled at a smaller eps counts as fooled at a larger one without another attack (its
        example lies in the larger ball) whenever the smaller eps's batch came first."""
        pairs = [(c, int(j)) for c, upto in sorted(todo, key=lambda t: t[0].k) for j in c.order[c.pos : upto]]
        for c, upto in todo:
            c.pos = max(c.pos, upto)
        batch: list[tuple[_Cell, int]] = []
        for c, j in pairs:
            if self.fooled_at[j] < c.k:
                c.by["smaller_eps"] += 1
                c.fooled_ids.append(j)
                continue
            batch.append((c, j))
            if len(batch) == self.batch:
                self._attack(batch, phase)
                batch = []
        if batch:
            self._attack(batch, phase)

    def _attack(self, batch: list[tuple[_Cell, int]], phase: int) -> None:
        t0 = time.perf_counter()
        ids = [j for _, j in batch]
        assert self.to_dev is not None
        xb, yb = self.to_dev(self.x[ids]), self.y[ids].to(self.dev)
        eps = torch.tensor([c.eps for c, _ in batch], dtype=xb.dtype, device=self.dev)
        hit = torch.zeros(len(batch), dtype=torch.bool, device=self.dev)
        steps = [0] * len(batch)
        if self.strong["apgd"] is not None:
            n_iter = self.strong["apgd"]["n_iter"]
            hit = _apgd(self.model, xb, yb, ids, eps, self.norm, n_iter, self.seed)
            steps = [n_iter + 1] * len(batch)
            for (c, _), h in zip(batch, hit.tolist(), strict=True):
                c.by["apgd"] += int(h)
        if self.strong["pgd"] is not None:
            p = self.strong["pgd"]
            for e in sorted({c.eps for c, _ in batch}):
                rest = [b for b, (c, _) in enumerate(batch) if c.eps == e and not hit[b]]
                if not rest:
                    continue
                spent = [0]
                r = torch.as_tensor(rest, device=self.dev)
                got = _pgd_early_stop(
                    self.model,
                    xb[r],
                    yb[r],
                    [ids[b] for b in rest],
                    e,
                    self.norm,
                    p["steps"],
                    p["restarts"],
                    self.seed,
                    spent,
                )
                hit[r[got]] = True
                for b, g in zip(rest, got.tolist(), strict=True):
                    batch[b][0].by["pgd"] += int(g)
                    steps[b] += spent[0] // len(rest)
        per = (time.perf_counter() - t0) / len(batch)
        for b, ((c, j), h) in enumerate(zip(batch, hit.tolist(), strict=True)):
            c.grad_steps[phase] += steps[b]
            c.seconds[phase] += per
            if h:
                c.fooled_ids.append(j)
                self.fooled_at[j] = min(self.fooled_at[j], c.k)
