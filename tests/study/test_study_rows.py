"""The Studies list: a study file whose runs another study trained and evaluated counts as done only when its own
planned evaluations are stored too (a shared run id is the same training, not the same attacks)."""

from __future__ import annotations

from pathlib import Path

from rttui import api
from tests.studies import tiny_study


def test_a_study_sharing_trained_runs_but_not_their_attacks_is_partial(tmp_path: Path) -> None:
    studies = tmp_path / "studies"
    studies.mkdir()
    grid = [{"models": ["test_resnet"], "strategies": ["full"]}]
    fgsm = studies / "fgsm.toml"
    fgsm.write_text(tiny_study(study={"name": "fgsm"}, attacks={"pgd": None}, grid=grid))
    both = studies / "both.toml"
    both.write_text(tiny_study(study={"name": "both"}, grid=grid))  # the same run, plus PGD
    db = tmp_path / "x.db"
    api.run_study(api.load_study(fgsm), db)
    rows = {r.name: r for r in api.list_studies(db, studies)}
    assert (rows["fgsm"].state, rows["fgsm"].done) == ("done", 1)
    # the run is done for fgsm, but its PGD evaluation was never run: `rttui run both.toml` would still work
    assert (rows["both"].state, rows["both"].done, rows["both"].runs) == ("partial", 0, 1)
    api.run_study(api.load_study(both), db)
    rows = {r.name: r for r in api.list_studies(db, studies)}
    assert rows["both"].state == rows["fgsm"].state == "done"
