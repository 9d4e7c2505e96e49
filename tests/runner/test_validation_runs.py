"""Validation while training, through the runner and the store (issue #31): per-epoch validation rows, the selected
epoch on the run and in its records, the robust-overfitting check, and a killed runner that resumes with the same
per-epoch records as an uninterrupted one.

One tiny run (test_resnet, full fine-tuning, 3 epochs, FGSM at one eps), one torch thread.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rttui import api
from rttui.engine.validation import pick_epoch
from tests.studies import tiny_study

STUDY = tiny_study(
    study={"name": "val"},
    source={"train_size": 120, "epochs": 1},
    target={"test_size": 30, "train_size": 100, "val_size": 20},
    train={"lr": 3e-3, "epochs": 3, "batch_size": 32, "select": "best_robust", "probe": {"images": 12}},
    eval={"epsilons": [0.03]},
    attacks={"pgd": None},
    grid=[{"models": ["test_resnet"], "strategies": ["full"]}],
)
VAL_COLS = "epoch, loss, train_acc, val_clean_acc, val_adv_acc, val_n, probe"


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("RTTUI_FAULTS", raising=False)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def val_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("val")
    (d / "val.toml").write_text(STUDY)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = api.run_study(api.load_study(d / "val.toml"), d / "val.db")
    finally:
        torch.set_num_threads(n)
    assert res["failed"] == 0 and res["done"] == 1, res
    return d / "val.db"


def _q(db: Path, sql: str) -> list[tuple]:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def test_validation_rows_and_selected_epoch_are_stored(val_db: Path) -> None:
    rows = _q(val_db, f"select {VAL_COLS} from epochs where kind = 'run' order by epoch")
    assert [r[0] for r in rows] == [1, 2, 3]
    for r in rows:
        assert r[3] is not None and r[4] is not None and r[5] == 20
        assert json.loads(r[6])["n"] == 12
    # The source (pretraining) has no validation split.
    assert _q(val_db, "select count(*) from epochs where kind = 'source' and val_clean_acc is not null") == [(0,)]
    history = [{"epoch": r[0], "val_clean_acc": r[3], "val_adv_acc": r[4]} for r in rows]
    ((selected,),) = _q(val_db, "select selected_epoch from runs")
    assert selected == pick_epoch(history, "best_robust")
    assert max(r[4] for r in rows) == next(r[4] for r in rows if r[0] == selected)
    recs = api.export_records(val_db, "val")
    assert recs and {r["selected_epoch"] for r in recs} == {selected}
    assert "selected_epoch" in api.records_text(recs, "csv").splitlines()[0]


def test_validation_robust_overfitting_check_is_stored(val_db: Path) -> None:
    checks = _q(val_db, "select level, message from checks where \"check\" = 'robust_overfitting'")
    assert len(checks) == 1 and checks[0][0] in ("ok", "warning")
    assert "robust validation accuracy peaked" in checks[0][1]


def test_validation_killed_runner_resumes_with_the_same_epoch_records(val_db: Path, tmp_path: Path) -> None:
    f = tmp_path / "val.toml"
    f.write_text(STUDY)
    db = tmp_path / "k.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RTTUI_FAULTS": json.dumps([{"unit": "run", "kill_after_epoch": 2}])}
    cmd = [sys.executable, "-c", "from rttui.cli import main; main()", "run", str(f), "--db", str(db), "-q"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert _q(db, "select epoch from epochs where kind = 'run' order by epoch") == [(1,), (2,)]
    env.pop("RTTUI_FAULTS")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    sql = f"select {VAL_COLS} from epochs where kind = 'run' order by epoch"
    assert _q(db, sql) == _q(val_db, sql)
    same = "select selected_epoch, sha256, clean_acc from runs"
    assert _q(db, same) == _q(val_db, same)
    assert json.loads(_q(db, "select info from runs")[0][0])["resumed_from_epoch"] == 2


def test_validation_curves_cli_writes_the_figure_and_its_numbers(
    val_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rttui.cli import main

    out = tmp_path / "figs"
    monkeypatch.setattr(sys, "argv", ["rttui", "curves", "--db", str(val_db), "--study", "val", "--out", str(out)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code in (0, None), capsys.readouterr().err
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"validation_curves.{ext}" for ext in ("csv", "json", "png", "svg")]
    rows = json.loads((out / "validation_curves.json").read_text())
    stored = _q(val_db, "select epoch, val_clean_acc, val_adv_acc from epochs where kind = 'run' order by epoch")
    # One seed: the curve's means are the stored per-epoch values.
    assert [(r["epoch"], r["val_clean_mean"], r["val_adv_mean"]) for r in rows] == [tuple(s) for s in stored]
    assert rows[0]["select"] == "best_robust" and rows[0]["selected_epochs"] == [
        _q(val_db, "select selected_epoch from runs")[0][0]
    ]
    assert "robust peaks at" in capsys.readouterr().out
    header = (out / "validation_curves.csv").read_text().splitlines()[0]
    assert header.startswith("config,dataset,model,strategy,technique,select,epoch")


def test_validation_curves_without_validation_is_one_line(
    tiny_run_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rttui.cli import main

    monkeypatch.setattr(sys, "argv", ["rttui", "curves", "--db", str(tiny_run_db), "--out", str(tmp_path / "f")])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err.splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "val_size" in err[0], err
