"""Strategy variants (a freeze-depth sweep stores every depth as `layer_freezing`) are never pooled.

The end-of-run tables of `rttui run` and the Plots screen once grouped records by strategy name alone and kept
the last record per seed, so a two-depth sweep showed one `layer_freezing` row made of whichever variant came
last, while `rttui compare` showed both. Every view now selects and aggregates through analysis.records and
aggregate.cell_stats: one row per variant, labelled as `compare` labels it (`layer_freezing[freeze=1]`).

The numbers are made up and written through the store's public methods (as the runner would), so the two
variants differ clearly; `rttui run` then finds everything done (no checkpoint is read) and only prints its
tables.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rttui import api
from rttui.cli.app import app
from rttui.store import Store
from tests.studies import tiny_study
from tests.tui.helpers import wait_for

STUDY = tiny_study(
    study={"name": "depths", "seeds": [0, 1]},
    eval={"epsilons": [0.01, 0.03]},
    attacks={"fgsm": None},
    grid=[{"models": ["test_resnet"], "freeze_depths": [1, 2]}],
)
N = 50
# Adversarial accuracy by freeze depth: far apart, so pooling or dropping a variant shows in every figure.
ADV = {1: 0.9, 2: 0.5}


def _adv(depth: int, seed: int, eps: float) -> float:
    return round((ADV[depth] - 2 * eps - 0.04 * seed) * N) / N


def _write(db: Path, study_file: Path) -> None:
    study = api.load_study(study_file)
    plan = api.make_plan(study)
    with Store.open(db, write=True) as s:
        for sp in plan.sources.values():
            s.ensure_source(sp.id, sp.config)
            ckpt = f"sources/{sp.id}/model.safetensors"  # never read: the runner finds nothing left to do
            s.update_unit("source", sp.id, state="done", checkpoint=ckpt, clean_acc=0.99, n_test=N, seconds=1.0)
        for rp in plan.runs:
            s.ensure_run(rp.id, rp.config)
        s.register_study(study.name, str(study_file), study.raw, [r.id for r in plan.runs])
        for rp in plan.runs:
            depth, seed = rp.config["strategy"]["params"]["freeze"], rp.config["seed"]
            clean = 0.96 - 0.02 * seed
            ckpt = f"runs/{rp.id}/model.safetensors"
            s.update_unit("run", rp.id, state="done", checkpoint=ckpt, num_classes=5, clean_acc=clean, n_test=N)
            for ep in rp.evals:
                metrics = []
                for eps in ep.epsilons:
                    adv = _adv(depth, seed, eps)
                    metrics.append(
                        {
                            "eps": eps,
                            "attack": ep.attack,
                            "norm": "linf",
                            "steps": ep.params.get("steps", 1),
                            "step_size": eps * 0.25,
                            "restarts": 1,
                            "random_start": True,
                            "n": N,
                            "n_clean_correct": round(clean * N),
                            "n_adv_correct": round(adv * N),
                            "clean_acc": clean,
                            "adv_acc": adv,
                            "mode": "sweep",
                            "precision": "fp32",
                            "max_perturbation": eps,
                        }
                    )
                evaluation = {
                    "id": ep.id,
                    "run_id": rp.id,
                    "attack": ep.attack,
                    "params": ep.params,
                    "epsilons": list(ep.epsilons),
                    "mode": "sweep",
                    "n": N,
                    "seconds": 1.0,
                }
                s.add_evaluation(evaluation, metrics, [], [], [])


@pytest.fixture
def depths_db(tmp_path: Path) -> tuple[Path, Path]:
    studies = tmp_path / "studies"
    studies.mkdir()
    f = studies / "depths.toml"
    f.write_text(STUDY)
    db = tmp_path / "depths.db"
    _write(db, f)
    return db, f


def _compare_cells(db: Path) -> dict[tuple[str, float], tuple[str, str]]:
    """(strategy label, eps) -> the clean and adversarial cells `compare` prints (mean±std, in %)."""
    comp = api.compare(db, "depths", "pgd", None, rows=["strategy", "eps"])
    out = {}
    for t in comp.tables:
        for cell in t.cells.values():
            out[(cell.key["strategy"], cell.key["eps"])] = (cell.fmt("clean"), cell.fmt("adv"))
    return out


def test_compare_labels_each_depth(depths_db: tuple[Path, Path]) -> None:
    cells = _compare_cells(depths_db[0])
    assert sorted({s for s, _ in cells}) == ["layer_freezing[freeze=1]", "layer_freezing[freeze=2]"]
    for depth in (1, 2):  # mean ± sample sd over the two seeds, in %
        a, b = _adv(depth, 0, 0.03), _adv(depth, 1, 0.03)
        want = f"{50 * (a + b):.1f}±{100 * statistics.stdev([a, b]):.1f}"
        assert cells[(f"layer_freezing[freeze={depth}]", 0.03)][1] == want


def test_run_end_of_run_table_shows_one_row_per_depth(depths_db: tuple[Path, Path]) -> None:
    db, f = depths_db
    r = CliRunner().invoke(app, ["run", str(f), "--db", str(db), "-q"])
    assert r.exit_code == 0, r.output
    cells = _compare_cells(db)
    rows = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\W*(layer_freezing\S*)\s*│\s*(\S+)\s*│\s*(\S+)\s*│\s*(\S+)\s*│", line)
        if m:
            rows[m.group(1)] = m.groups()[1:]
    # One row per variant, labelled as compare labels it (the brackets survive rich), with compare's numbers.
    assert sorted(rows) == ["layer_freezing[freeze=1]", "layer_freezing[freeze=2]"]
    for label, (clean, adv01, adv03) in rows.items():
        assert (clean, adv01) == cells[(label, 0.01)]
        assert adv03 == cells[(label, 0.03)][1]


async def test_plots_screen_draws_one_line_per_depth(depths_db: tuple[Path, Path]) -> None:
    from rttui.tui import make_app

    db, f = depths_db
    want: dict[str, list[tuple[float, float]]] = {}
    comp = api.compare(db, "depths", "pgd", None, rows=["strategy", "eps"])
    for t in comp.tables:
        for cell in t.cells.values():
            want.setdefault(cell.key["strategy"], []).append((cell.key["eps"], 100 * cell.stat("adv").mean))
    app = make_app(db=db, studies_dir=f.parent, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        app.open_study("depths", str(f))
        await pilot.press("6")
        await wait_for(pilot, lambda: app.current_mode == "plots" and app.screen.drawn, tries=400)
        drawn = app.screen.drawn
        assert drawn["attack"] == "pgd"
        assert drawn["lines"] == {k: sorted(v) for k, v in want.items()}
