"""AutoAttack is the authors' reference code (pyautoattack): equal to calling it directly, at the reference's
budgets, never weaker than PGD, inside the attack contract, and refusing in one line what it cannot run."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from rttui.engine.attacks.autoattack import autoattack, check_classes, reference_budgets
from rttui.engine.evaluate import evaluate_attack, predict
from rttui.engine.models import create_model
from rttui.errors import StudyError

pyautoattack = pytest.importorskip("pyautoattack")

FOUR = ["apgd-ce", "apgd-t", "fab-t", "square"]


def mlp(classes: int, seed: int = 0) -> nn.Module:
    """A tiny MLP on 3x8x8 images: the reference's per-iteration cost is then mostly its own Python."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, classes)).eval()


def images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def direct_reference(model, x, y, eps, seed, version, attacks=None, settings=()):
    """The reference called as its README shows, on the same model, images and seed."""
    adv = pyautoattack.AutoAttack(model, norm="Linf", eps=eps, seed=seed, version=version, attacks=attacks)
    for obj, attr, value in settings:
        setattr(getattr(adv, obj), attr, value)
    x_adv, _ = adv.run_standard_evaluation(x, y, batch_size=len(x))
    return x_adv


def test_autoattack_equals_the_reference_called_directly_with_all_four_attacks() -> None:
    """Exact: torch.equal on x_adv, the most the reference returns (its predictions follow from x_adv). The four
    standard attacks in the standard order, via version "custom" with the reference's own knobs turned down
    (APGD-T 2 targets, FAB-T 1, 100 Square queries, 1 APGD restart) so it takes seconds; every attack meets
    surviving images."""
    m = mlp(5)
    x = images(8)
    with torch.no_grad():
        y = m(x).argmax(1)
    eps, seed = 0.12, 7
    overrides = {"apgd.n_restarts": 1, "apgd_targeted.n_target_classes": 2, "fab.n_target_classes": 1}
    overrides["square.n_queries"] = 100
    ours, info = autoattack(m, x, y, eps, 5, seed=seed, version="custom", attacks=FOUR, overrides=overrides)
    settings = [(*k.split("."), v) for k, v in overrides.items()]
    ref = direct_reference(m, x, y, eps, seed, "custom", FOUR, settings)
    assert torch.equal(ours, ref)
    assert info["attacks_ran"] == FOUR  # some images survived into Square, so every attack was compared
    with torch.no_grad():
        fooled = m(ours).argmax(1) != y
    assert 0 < int(fooled.sum()) < len(y)  # the attack did something and did not trivially win
    assert info["per_attack"]["square"]["n_queries"] == 100 and info["per_attack"]["fab-t"]["n_target_classes"] == 1


def test_autoattack_standard_equals_the_reference_through_evaluate() -> None:
    """The full standard version at the reference budgets, through rttui's evaluation (clean-correct images only,
    one batch): its predictions under attack equal the reference's y_adv on the same images and seed."""
    m = mlp(5, seed=2)
    x = images(12, seed=4)
    with torch.no_grad():
        y = m(x).argmax(1)
    cc = predict(m, x) == y.numpy()
    xs, ys = x[cc], y[cc]
    eps, seed = 0.05, 3
    res = evaluate_attack(m, xs, ys, "autoattack", {}, [eps], seed=seed, num_classes=5)
    ref = pyautoattack.AutoAttack(m, norm="Linf", eps=eps, seed=seed, version="standard")
    ref.apgd_targeted.n_target_classes = ref.fab.n_target_classes = 4  # min(9, classes - 1), as rttui sets it
    _, y_adv = ref.run_standard_evaluation(xs, ys, batch_size=len(xs))
    assert np.array_equal(res.adv_pred[0], y_adv.numpy())
    assert res.params["implementation"] == "reference" and res.params["n_iter"] == 100
    assert res.params["n_target_classes"] == 4 and res.params["square_n_queries"] == 5000


def test_autoattack_is_never_weaker_than_pgd_at_the_same_eps() -> None:
    """The full standard version (reference budgets) vs PGD-10 with a random start, same model, images, eps and
    seed: AutoAttack's accuracy is never above PGD's beyond max(3 samples, 1%). A tiny MLP keeps Square's 5,000
    queries on the survivors to seconds."""
    m = mlp(5, seed=3)
    x = images(16, seed=5)
    with torch.no_grad():
        y = m(x).argmax(1)
    grid = [0.01, 0.03]
    aa = evaluate_attack(m, x, y, "autoattack", {}, grid, seed=0)
    pgd = evaluate_attack(m, x, y, "pgd", {"steps": 10}, grid, seed=0)
    for a, p in zip(aa.metrics(), pgd.metrics(), strict=True):
        assert a["n_adv_correct"] <= p["n_adv_correct"] + max(3, 0.01 * len(y)), (a, p)
        assert a["max_perturbation"] <= a["eps"] + 1e-5
    assert pgd.metrics()[0]["n_adv_correct"] > 0  # PGD leaves survivors at the small eps, so this compares
    assert aa.params["implementation"] == "reference" and aa.params["n_target_classes"] == 4


def test_autoattack_budgets_are_the_reference_ones() -> None:
    """Read from the configured reference objects: 100 iterations, 9 targets (or classes - 1), 5,000 queries."""
    std = reference_budgets(10, "linf", seed=4)
    assert std["implementation"] == "reference" and std["library"] == "pyautoattack"
    assert std["attacks"] == FOUR and std["n_iter"] == 100 and std["n_target_classes"] == 9
    assert std["square_n_queries"] == 5000 and std["seed"] == 4
    assert all(a["n_restarts"] == 1 for a in std["per_attack"].values())
    assert reference_budgets(5)["n_target_classes"] == 4
    assert reference_budgets(100)["n_target_classes"] == 9
    plus = reference_budgets(10, version="plus")
    assert plus["per_attack"]["apgd-ce"]["n_restarts"] == 5 and plus["per_attack"]["fab"]["n_restarts"] == 5
    assert plus["per_attack"]["fab-t"]["n_restarts"] == 1 and len(plus["attacks"]) == 6
    rand = reference_budgets(3, version="rand")
    assert rand["attacks"] == ["apgd-ce", "apgd-dlr"] and rand["per_attack"]["apgd-dlr"]["eot_iter"] == 20
    assert rand["square_n_queries"] is None and rand["n_target_classes"] is None


def test_autoattack_class_limits_come_from_the_reference_code() -> None:
    """What the refusals protect against: the reference's targeted DLR loss reads the 4th-largest logit and its
    DLR loss the 3rd, so with fewer classes they raise IndexError deep inside a run."""
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

    m3 = mlp(3)
    atk = APGDAttack_targeted(m3, eps=0.1)
    atk.y_target = torch.tensor([1, 2])
    with pytest.raises(IndexError):
        atk.dlr_loss_targeted(torch.randn(2, 3), torch.tensor([0, 0]))
    with pytest.raises(IndexError):
        APGDAttack(mlp(2), eps=0.1).dlr_loss(torch.randn(2, 2), torch.tensor([0, 1]))
    check_classes(4, "standard")
    check_classes(3, "rand")


@pytest.mark.parametrize(
    ("classes", "version", "match"),
    [
        (3, "standard", r"has 3 classes but AutoAttack version 'standard' needs at least 4 .*version = \"rand\""),
        (3, "plus", "needs at least 4"),
        (2, "rand", "version 'rand' needs at least 3"),
        (10, "fast", r"attacks\.autoattack\.version: unknown AutoAttack version 'fast'; use one of standard"),
    ],
)
def test_autoattack_refuses_in_one_line(classes: int, version: str, match: str) -> None:
    m = mlp(classes)
    x, y = images(4), torch.zeros(4, dtype=torch.long)
    with pytest.raises(StudyError, match=match) as err:
        autoattack(m, x, y, 0.03, classes, version=version)
    assert "\n" not in str(err.value)


def test_autoattack_evaluation_refuses_before_spending_time() -> None:
    torch.manual_seed(0)
    m = create_model({"name": "test_vit", "kwargs": {"patch_size": 4}}, 3, 16).eval()
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    with pytest.raises(StudyError, match="at least 4"):
        evaluate_attack(m, x, y, "autoattack", {}, [0.03])
    with pytest.raises(StudyError, match="unknown AutoAttack version"):
        evaluate_attack(m, x, y, "autoattack", {"version": "nope"}, [0.03], num_classes=10)


def test_autoattack_overrides_only_with_custom_and_only_the_reference_knobs() -> None:
    m, x = mlp(5), images(2)
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(StudyError, match="version 'standard' runs the reference's budgets"):
        autoattack(m, x, y, 0.03, 5, overrides={"square.n_queries": 10})
    with pytest.raises(StudyError, match=r"unknown key 'apgd\.n_iter'"):
        autoattack(m, x, y, 0.03, 5, version="custom", attacks=["apgd-ce"], overrides={"apgd.n_iter": 10})
    with pytest.raises(StudyError, match="use at most 4"):
        autoattack(m, x, y, 0.03, 5, version="custom", attacks=["apgd-t"], overrides={"fab.n_target_classes": 9})


def test_autoattack_keeps_the_contract_and_the_callers_state(capsys: pytest.CaptureFixture[str]) -> None:
    """Eval mode and requires_grad restored, no gradient on the weights (the reference's FAB calls .backward()),
    the caller's torch RNG and sys tracer untouched (the reference reseeds and clears them), the reference's
    warnings returned, not printed; every example in [0, 1] and the eps-ball."""

    class Probs(nn.Module):  # softmax outputs: the reference warns that logits are expected
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp(5)

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.net(t).softmax(1)

    m = Probs().train()
    x = images(6)
    with torch.no_grad():
        y = m(x).argmax(1)

    def tracer(frame, event, arg):  # a do-nothing tracer, like a coverage tool's
        return None

    rng = torch.get_rng_state()
    sys.settrace(tracer)
    try:
        xa, info = autoattack(
            m,
            x,
            y,
            0.05,
            5,
            seed=1,
            version="custom",
            attacks=["apgd-ce", "fab-t"],
            overrides={"apgd.n_restarts": 1, "fab.n_target_classes": 1},
        )
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(None)
    assert torch.equal(torch.get_rng_state(), rng)
    assert m.training and all(p.requires_grad and p.grad is None for p in m.parameters())
    assert any("probability distribution" in w for w in info["reference_warnings"])
    out = capsys.readouterr()
    assert "probability" not in out.err + out.out
    assert float((xa - x).abs().max()) <= 0.05 + 1e-6 and float(xa.min()) >= 0 and float(xa.max()) <= 1


def test_autoattack_min_classes_table_is_the_engines() -> None:
    """The torch-free table the study validation reads equals what the engine refuses."""
    from rttui.engine.attacks.autoattack import VERSIONS, min_classes
    from rttui.engine.attacks.names import AUTOATTACK_MIN_CLASSES

    assert set(AUTOATTACK_MIN_CLASSES) == set(VERSIONS)
    assert all(AUTOATTACK_MIN_CLASSES[v] == min_classes(v) for v in VERSIONS)


@pytest.mark.parametrize(
    ("target", "params", "match"),
    [
        ({"classes": [5, 6, 7]}, {}, r"target has 3 classes but AutoAttack version 'standard' needs at least 4"),
        ({"classes": [5, 6]}, {"version": "rand"}, "version 'rand' needs at least 3"),
        ({}, {"version": "fast"}, r"\[autoattack\]\.version: unknown value 'fast'; choose one of plus, rand, standard"),
    ],
)
def test_autoattack_study_validation_refuses_in_one_line(target: dict, params: dict, match: str) -> None:
    from rttui.study.spec import parse_study
    from tests.studies import tiny_study

    text = tiny_study(target=target, attacks={"autoattack": params})
    with pytest.raises(StudyError, match=match) as err:
        parse_study(text)
    assert "\n" not in str(err.value)


def test_autoattack_study_accepts_rand_on_three_classes_and_records_version_and_revision() -> None:
    from rttui.study.plan import make_plan
    from rttui.study.spec import parse_study
    from tests.studies import tiny_study

    plan = make_plan(
        parse_study(tiny_study(target={"classes": [5, 6, 7]}, attacks={"autoattack": {"version": "rand"}}))
    )
    aa = [ep for ep in plan.evals if ep.attack == "autoattack"]
    assert aa and all(ep.params["version"] == "rand" and ep.params["revision"] == 2 for ep in aa)


def test_autoattack_bad_version_exits_2_with_one_line(tmp_path) -> None:
    import subprocess

    from tests.studies import tiny_study

    f = tmp_path / "aa.toml"
    f.write_text(tiny_study(attacks={"autoattack": {"version": "fast"}}))
    code = "from rttui.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", code, "validate", str(f)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "[autoattack].version: unknown value 'fast'" in lines[0], r.stderr
