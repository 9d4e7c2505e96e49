"""Fixtures for the TUI tests: a database of fixed, made-up numbers (so snapshots never move), written through
the store's public methods, and a frozen clock."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rttui import api
from rttui.store import Store

DEMO_STUDY = """
[study]
name = "demo"
seeds = [0, 1, 2]

[source]
dataset = "digits"
classes = [0, 1, 2, 3, 4]
epochs = 2

[target]
dataset = "digits"
classes = [5, 6, 7, 8, 9]
image_size = 16
test_size = 50

[train]
epochs = 3

[eval]
epsilons = [0.01, 0.03, 0.05]

[attacks.fgsm]
[attacks.pgd]
steps = 5

[[grid]]
models = ["test_resnet"]
strategies = ["full", "feature_extraction", "layer_freezing"]
"""

FROZEN = 1_700_000_000.0
N = 50
BASE = {"full": 0.96, "feature_extraction": 0.90, "layer_freezing": 0.94}
ROBUST = {"full": 0.30, "feature_extraction": 0.55, "layer_freezing": 0.42}


def _acc(strategy: str, seed: int, attack: str, eps: float) -> tuple[float, float]:
    """Made-up but plausible numbers: clean ~0.9-0.96, adversarial falling with eps, PGD below FGSM."""
    clean = round((BASE[strategy] - 0.02 * seed) * N) / N
    k = 1.0 if attack == "fgsm" else 1.6
    adv = clean * ROBUST[strategy] ** (k * eps / 0.02) * (1 - 0.01 * seed)
    return clean, math.floor(adv * N) / N


def write_demo_db(db: Path, study_file: Path, fail_one: bool = True) -> None:
    """Register the demo study and store every run as the runner would, with fixed numbers and times."""
    study = api.load_study(study_file)
    plan = api.make_plan(study)
    with Store.open(db, write=True) as s:
        for sp in plan.sources.values():
            s.ensure_source(sp.id, sp.config)
            s.update_unit("source", sp.id, state="done", checkpoint="", clean_acc=0.99, n_test=N, seconds=4.0)
        for rp in plan.runs:
            s.ensure_run(rp.id, rp.config)
        s.register_study(study.name, str(study_file), study.raw, [r.id for r in plan.runs])
        for i, rp in enumerate(plan.runs):
            strategy, seed = rp.config["strategy"]["name"], rp.config["seed"]
            if fail_one and strategy == "layer_freezing" and seed == 2:
                s.add_epoch(rp.id, "run", {"epoch": 1, "loss": 1.2, "train_acc": 0.5, "seconds": 2.0})
                s.update_unit(
                    "run",
                    rp.id,
                    state="failed",
                    error="NonFiniteLoss: loss became nan at epoch 2, step 3",
                    started=FROZEN - 100,
                    finished=FROZEN - 96,
                    seconds=4.0,
                )
                continue
            for e in range(1, 4):
                s.add_epoch(
                    rp.id,
                    "run",
                    {"epoch": e, "loss": round(1.5 / e + 0.01 * i, 3), "train_acc": 0.6 + 0.1 * e, "seconds": 2.0},
                )
            clean, _ = _acc(strategy, seed, "fgsm", 0.0)
            s.update_unit(
                "run",
                rp.id,
                state="done",
                checkpoint="",
                num_classes=5,
                clean_acc=clean,
                n_test=N,
                started=FROZEN - 100,
                finished=FROZEN - 90 + i,
                seconds=10.0 + i,
            )
            for ep in rp.evals:
                metrics = []
                for eps in ep.epsilons:
                    c, a = _acc(strategy, seed, ep.attack, eps)
                    metrics.append(
                        {
                            "eps": eps,
                            "attack": ep.attack,
                            "norm": "linf",
                            "steps": ep.params.get("steps", 1),
                            "step_size": eps * 0.25 if ep.attack == "pgd" else eps,
                            "restarts": 1,
                            "random_start": ep.attack == "pgd",
                            "n": N,
                            "n_clean_correct": round(c * N),
                            "n_adv_correct": round(a * N),
                            "clean_acc": c,
                            "adv_acc": a,
                            "mode": "sweep",
                            "precision": "fp32",
                            "max_perturbation": eps,
                        }
                    )
                s.add_evaluation(
                    {
                        "id": ep.id,
                        "run_id": rp.id,
                        "attack": ep.attack,
                        "params": ep.params,
                        "epsilons": list(ep.epsilons),
                        "mode": "sweep",
                        "n": N,
                        "seconds": 1.0,
                    },
                    metrics,
                    [],
                    [],
                    [],
                )


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    """A folder with studies/demo.toml and demo.db holding its (made-up) results."""
    studies = tmp_path / "studies"
    studies.mkdir()
    f = studies / "demo.toml"
    f.write_text(DEMO_STUDY)
    write_demo_db(tmp_path / "demo.db", f)
    return tmp_path


@pytest.fixture
def frozen_clock():
    return lambda: FROZEN
