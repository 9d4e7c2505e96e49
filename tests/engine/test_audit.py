"""The attack-strength audit: a deliberately weak attack is flagged, a strong one is not; the audit stays
inside the eps-ball, leaves the evaluation's id alone, is validated in one line and counted in the cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rttui.engine.attacks.audit import AUDIT_SEED_SALT, audit_attack, reference_start
from rttui.engine.attacks.audit_settings import (
    check_settings,
    estimate,
    flag_threshold,
    is_flagged,
    miss_probability,
    subsample_size,
    tolerance,
)
from rttui.engine.evaluate import evaluate_attack
from rttui.errors import StudyError

GRID = [0.01, 0.03]
WEAK = {"steps": 1, "rel_step_size": 0.25, "random_start": False}
# 10 restarts: with 5, the audit's APGD-CE-100 fooled 2 of the 19 survivors at eps 0.03 (threshold 3), too close
# to call; with 10 it fools none of the 17 left, on any thread count.
STRONG = {"steps": 50, "rel_step_size": 0.1, "random_start": True, "restarts": 10}


def _audit(trained, params, grid=GRID, settings=None):
    m, x, y = trained
    ev = evaluate_attack(m, x, y, "pgd", params, grid, seed=0)
    au = audit_attack(m, x, y, ev.fooled, ev.clean_correct, grid, "pgd", params, seed=0, settings=settings)
    return ev, au


def test_audit_flags_a_weak_pgd(trained) -> None:
    """PGD with one step of 0.25 eps, no random start: the reference APGD-CE fools far more of its survivors."""
    ev, au = _audit(trained, WEAK)
    assert au["flagged"]
    rows = au["per_eps"]
    hit = [r for r in rows if r["flagged"]]
    assert hit and all(r["reattacked"] - r["survived_stronger"] > r["threshold"] for r in hit)
    survivors = [int((ev.clean_correct & ~ev.fooled[i]).sum()) for i in range(len(GRID))]
    assert [r["survivors"] for r in rows] == survivors
    assert all(r["survived_attack"] == r["reattacked"] <= r["survivors"] for r in rows)
    # escalate is on by default: a flagged eps got a verdict on every survivor, so its estimate is exact
    assert all(r["escalated"] and r["reattacked"] == r["survivors"] for r in hit)
    assert all(r["est_lo"] == r["est_adv_correct"] == r["est_hi"] == r["survived_stronger"] for r in hit)
    # One audited step: APGD-CE runs min_iters (10) iterations, ten times the budget it checks.
    assert au["stronger"]["apgd"]["implementation"] == "reference" and au["stronger"]["apgd"]["n_iter"] == 10
    # fooled_ids are survivors of the stored attack at that eps, never an image it had already fooled
    for i, r in enumerate(rows):
        assert all(ev.clean_correct[j] and not ev.fooled[i, j] for j in r["fooled_ids"])


def test_audit_does_not_flag_pgd50_with_restarts(trained) -> None:
    """PGD-50 (step 0.1 eps) with 10 random restarts on the same model and grid: the stronger attack finds at most
    the tolerance more, so it is not flagged (and the audit re-attacked survivors, so this compares)."""
    _, au = _audit(trained, STRONG)
    assert not au["flagged"], [(r["eps"], r["n"], r["survivors"], r["fooled_by"]) for r in au["per_eps"]]
    assert au["per_eps"][0]["n"] > 0
    assert all(r["complete"] for r in au["per_eps"])  # not flagged: every chosen image was re-attacked


def test_audit_subsample_and_flag_rule() -> None:
    """The flag rule is the accuracy tolerance: overstated by more than max(3, 1% of n) test images."""
    s = {"fraction": 0.25, "min_samples": 50, "max_samples": 200}
    assert subsample_size(171, s) == 50 and subsample_size(30, s) == 30 and subsample_size(2000, s) == 200
    assert tolerance(500) == 5 and tolerance(296) == 3 and tolerance(10_000) == 100
    assert is_flagged(400, 60, 3, 500)  # 3 of 60 re-attacked of 400 survivors: 20 images overstated
    assert not is_flagged(2, 2, 2, 500)  # 2 of 2: 2 images, within the 5-image tolerance
    assert not is_flagged(230, 230, 5, 500) and is_flagged(230, 230, 6, 500)  # exact: f > 5
    assert not is_flagged(296, 296, 3, 296) and is_flagged(296, 296, 4, 296)
    assert flag_threshold(230, 230, 500) == 5 and flag_threshold(171, 50, 500) == 1
    for surv, r, n in ((171, 50, 500), (400, 60, 500), (2000, 200, 10_000)):
        t = flag_threshold(surv, r, n)
        assert not is_flagged(surv, r, t, n) and is_flagged(surv, r, t + 1, n)
    # the false-negative rate falls as the true overstatement grows past the tolerance
    assert miss_probability(0.06, 171, 500) > miss_probability(0.10, 171, 500) > miss_probability(0.2, 171, 500)


@pytest.mark.parametrize(
    ("audit", "match"),
    [
        ({"max_sample": 10}, r"eval\.audit\.max_sample: unknown key; use one of enabled, max_samples"),
        ({"max_samples": 0}, r"eval\.audit\.max_samples: 0 is not a positive integer"),
        ({"restarts": -2}, r"eval\.audit\.restarts: -2 is not a positive integer"),
        ({"fraction": 1.5}, r"eval\.audit\.fraction: 1.5 is not a number in \(0, 1\]"),
        ({"enabled": "yes"}, r"eval\.audit\.enabled: 'yes' is not true/false"),
        ({"apgd": False}, "apgd and pgd are both false"),
    ],
)
def test_audit_settings_refused_in_one_line(audit: dict, match: str) -> None:
    from rttui.study.spec import parse_study
    from tests.studies import tiny_study

    with pytest.raises(StudyError, match=match) as err:
        parse_study(tiny_study(eval={"audit": audit}))
    assert "\n" not in str(err.value)
    assert check_settings({"enabled": False}) == []


def test_audit_bad_key_exits_2(tmp_path) -> None:
    import subprocess
    import sys

    from tests.studies import tiny_study

    f = tmp_path / "a.toml"
    f.write_text(tiny_study(eval={"audit": {"stepz": 3}}))
    code = "from rttui.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", code, "validate", str(f)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "eval.audit.stepz: unknown key" in lines[0], r.stderr


def test_audit_never_changes_evaluation_ids_and_is_counted_in_the_cost() -> None:
    from rttui.study.plan import make_plan
    from rttui.study.spec import parse_study
    from tests.studies import tiny_study

    plain = make_plan(parse_study(tiny_study()))
    tuned = make_plan(parse_study(tiny_study(eval={"audit": {"max_samples": 20, "apgd_iters_factor": 10}})))
    off = make_plan(parse_study(tiny_study(eval={"audit": {"enabled": False}})))
    no_escalation = make_plan(parse_study(tiny_study(eval={"audit": {"escalate": False}})))
    ids = [ep.id for ep in plain.evals]
    assert ids == [ep.id for ep in tuned.evals] == [ep.id for ep in off.evals] == [e.id for e in no_escalation.evals]
    assert all(ep.audit is not None and not ep.audit["escalate"] for ep in no_escalation.evals)
    assert all(ep.audit is not None and ep.audit["enabled"] for ep in plain.evals)  # on by default (fgsm, pgd)
    assert all(ep.audit is None for ep in off.evals)
    assert plain.size()["audit_steps_per_image"] > 0 and off.size()["audit_steps_per_image"] == 0
    assert tuned.size()["audit_steps_per_image"] > plain.size()["audit_steps_per_image"]


def test_audit_check_names_what_the_stronger_attack_found() -> None:
    from rttui.engine.sanity import check_audit

    audit = {
        "stronger": {"apgd": {"n_iter": 20}, "pgd": None},
        "tolerance": 5.0,
        "per_eps": [
            {"eps": 0.01, "n": 50, "reattacked": 25, "survivors": 230, "survived_stronger": 19, "flagged": True},
            {"eps": 0.03, "n": 5, "reattacked": 5, "survivors": 5, "survived_stronger": 5, "flagged": False},
        ],
    }
    (c,) = check_audit("pgd", audit)
    assert c["level"] == "warning" and c["check"] == "attack_strength"
    assert "eps 0.01: fooled 6 of 25 re-attacked of 230 survivors (about 55 images overstated)" in c["message"]
    assert "APGD-CE, 20 iterations" in c["message"] and "more than 5 images" in c["message"]
    assert check_audit("pgd", None) == []


def test_escalate_makes_fooled_ids_the_reference_on_every_survivor(trained) -> None:
    """A flagged eps escalates: its fooled_ids equal the reference APGD-CE run directly on all its survivors (same
    iterations, same per-image starts and seed), and the evaluation it audits is left as it was."""
    from pyautoattack.autopgd_base import APGDAttack

    from rttui.engine.attacks.base import attack_mode
    from rttui.engine.attacks.pgd import _mix
    from rttui.engine.evaluate import channels_last

    m, x, y = trained
    grid = [0.03]
    ev = evaluate_attack(m, x, y, "pgd", WEAK, grid, seed=0)
    fooled_before = ev.fooled.copy()
    au = audit_attack(m, x, y, ev.fooled, ev.clean_correct, grid, "pgd", WEAK, seed=0, settings={"chunk": 5})
    (r,) = au["per_eps"]
    surv = np.flatnonzero(ev.clean_correct & ~ev.fooled[0])
    assert r["flagged"] and r["escalated"] and r["reattacked"] == r["survivors"] == len(surv) > r["n"]
    assert np.array_equal(ev.fooled, fooled_before)
    seed = _mix(0, AUDIT_SEED_SALT) & 0x7FFFFFFF
    ids = surv.tolist()
    with attack_mode(m), channels_last(m) as nhwc:
        xs = x[ids].contiguous(memory_format=torch.channels_last) if nhwc else x[ids]
        eps = torch.full((len(ids),), grid[0])
        atk = APGDAttack(m, n_iter=au["stronger"]["apgd"]["n_iter"], norm="Linf", n_restarts=1, eps=grid[0], seed=seed)
        atk.init_hyperparam(xs)
        _, _, _, xa = atk.attack_single_run(xs, y[ids], reference_start(xs, ids, eps, "linf", seed))
        with torch.no_grad():
            direct = surv[(m(xa).argmax(1) != y[ids]).numpy()]
    assert r["fooled_ids"] == sorted(direct.tolist())
    assert r["survived_stronger"] == len(surv) - len(direct)


def test_escalate_off_estimates_with_an_interval_around_the_estimate(trained) -> None:
    """Without escalation a flagged eps keeps its subsample; stopping once the flag is certain, the re-attacked
    count (the messages' denominator) is below the planned subsample, and the 95% interval holds the estimate."""
    from scipy.stats import binomtest

    from rttui.engine.sanity import check_audit

    settings = {"escalate": False, "chunk": 5, "min_samples": 20, "fraction": 0.1}
    _, au = _audit(trained, WEAK, settings=settings)
    rows = [r for r in au["per_eps"] if r["flagged"]]
    assert rows and not any(r["escalated"] for r in au["per_eps"])
    for r in au["per_eps"]:
        assert r["est_lo"] <= r["est_adv_correct"] <= r["est_hi"]
        assert r["est_lo"] >= 0 and r["est_hi"] <= r["survivors"]
    cut = [r for r in rows if r["reattacked"] < r["survivors"]]
    assert cut and any(r["reattacked"] < r["n"] and not r["complete"] for r in cut)
    (c,) = check_audit("pgd", au)
    for r in cut:
        f = r["reattacked"] - r["survived_stronger"]
        assert f"fooled {f} of {r['reattacked']} re-attacked of {r['survivors']} survivors" in c["message"]
        ci = binomtest(r["survived_stronger"], r["reattacked"]).proportion_ci(0.95, method="exact")
        assert r["est_lo"] == pytest.approx(r["survivors"] * ci.low, abs=1e-3)
        assert r["est_hi"] == pytest.approx(r["survivors"] * ci.high, abs=1e-3)


def test_escalate_estimate_is_exact_when_every_survivor_has_a_verdict() -> None:
    assert estimate(40, 40, 7) == (33.0, 33.0, 33.0)
    est, lo, hi = estimate(200, 50, 5)
    assert lo < est == 200 * 45 / 50 < hi <= 200


def test_audit_covers_torchattacks_ball_attacks(trained) -> None:
    """A `ta:` class that attacks an eps-ball is audited like rttui's PGD (sized by its own steps); a weak one,
    one step of torchattacks' PGD with no random start, is flagged. Minimal-perturbation classes are not."""
    from rttui.engine.attacks.audit_settings import audited, base_steps, cost_per_image
    from rttui.study.plan import make_plan
    from rttui.study.spec import parse_study
    from tests.studies import tiny_study

    assert audited("ta:PGD") and audited("ta:PGDL2") and audited("ta:FGSM") and not audited("ta:CW")
    assert not audited("autoattack") and not audited("transfer")
    assert base_steps("ta:PGD", {"steps": 3}) == 3 and base_steps("ta:FGSM", {}) == 1
    assert cost_per_image("ta:PGD", {"steps": 3}, None) > 0 == cost_per_image("ta:CW", {}, None)
    plan = make_plan(parse_study(tiny_study(attacks={"ta:PGD": {"steps": 2}, "ta:CW": {}})))
    by = {ep.attack: ep.audit is not None for ep in plan.evals}
    assert by["ta:PGD"] and not by["ta:CW"]
    m, x, y = trained
    params = {"steps": 1, "random_start": False, "norm": "linf"}
    ev = evaluate_attack(m, x, y, "ta:PGD", params, GRID, seed=0)
    au = audit_attack(m, x, y, ev.fooled, ev.clean_correct, GRID, "ta:PGD", ev.params, seed=0)
    assert au["stronger"]["base_steps"] == 1 and au["flagged"]


@pytest.mark.parametrize(("key", "cls"), [("steps", "ta:PGD"), ("eot_iter", "ta:EOTPGD"), ("n_restarts", "ta:APGD")])
def test_ta_counts_below_one_are_refused_in_one_line(key: str, cls: str) -> None:
    from rttui.study.spec import parse_study
    from tests.studies import tiny_study

    with pytest.raises(StudyError, match=rf"\[{cls}\]\.{key}: 0 is below 1") as err:
        parse_study(tiny_study(attacks={cls: {key: 0}}))
    assert "\n" not in str(err.value)


def test_audit_every_unaudited_attack_says_why() -> None:
    from rttui.engine.attacks.audit_settings import not_audited
    from rttui.engine.sanity import check_audit

    for attack, why in (
        ("pgd", "turned the audit off"),
        ("autoattack", "AutoAttack is the reference"),
        ("transfer", "never queries the target"),
        ("ta:CW", "minimal-perturbation"),
    ):
        (c,) = check_audit(attack, None, not_audited(attack))
        assert c["level"] == "info" and why in c["message"] and c["message"].startswith(f"{attack}: not audited")
