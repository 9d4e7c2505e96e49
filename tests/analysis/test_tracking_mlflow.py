"""`rttui export --to mlflow`: a study pushed to a local MLflow store (a SQLite tracking URI in a temp folder), read
back with MLflow's own client, holds `rttui export --format json`'s numbers; a second push adds no run and no
history point; an unreachable server or a missing extra is one line, exit 2, nothing written."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rttui.analysis.tracking import RECORD_METRICS, metric_name
from tests.entry import run_cli
from tests.trackers import MLFLOW_SKIP, quiet_trackers


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    quiet_trackers(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)  # anything MLflow would write by default lands here, never in the repository
    return tmp_path


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri: str, experiment: str) -> dict[str, Any]:
    c = _client(uri)
    exp = c.get_experiment_by_name(experiment)
    return {r.data.tags["rttui.run_id"]: r for r in c.search_runs([exp.experiment_id])}


def _histories(uri: str, runs: dict[str, Any]) -> dict[tuple[str, str], list[tuple[int, float, int]]]:
    c = _client(uri)
    return {
        (key, m): sorted((p.step, p.value, p.timestamp) for p in c.get_metric_history(r.info.run_id, m))
        for key, r in runs.items()
        for m in r.data.metrics
    }


def test_mlflow_push_reads_back_as_the_json_export(
    tiny_run_db: Path, env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("mlflow", reason=MLFLOW_SKIP)
    uri = f"sqlite:///{env / 'mlflow.db'}"
    code, out, err = run_cli(
        ["export", "--db", str(tiny_run_db), "--to", "mlflow", "--tracking-uri", uri], monkeypatch, capsys
    )
    assert code == 0, err
    assert "3 run(s) created, 0 updated" in out
    code, text, err = run_cli(["export", "--db", str(tiny_run_db), "--format", "json"], monkeypatch, capsys)
    records = json.loads(text)
    runs = _runs(uri, "tiny")
    assert set(runs) == {r["run_id"] for r in records} | {"study:tiny"}
    checked = 0
    for rec in records:
        metrics = runs[rec["run_id"]].data.metrics
        for what in RECORD_METRICS:
            if isinstance(rec.get(what), int | float):
                assert metrics[metric_name(rec["attack"], rec["eps"], what)] == pytest.approx(rec[what], abs=0), what
                checked += 1
    assert checked >= len(records) * 4
    # config as params, the audit and provenance as tags
    for rid, run in runs.items():
        if rid == "study:tiny":
            continue
        assert run.data.params["run_id"] == rid and run.data.params["model"] == "test_resnet"
        assert run.data.params["train.epochs"] == "1" and run.data.params["target.dataset"] == "digits"
        assert run.data.tags["rttui.audit"] in ("passed", "flagged")
        assert run.data.tags["rttui.env.torch"] and run.data.tags["rttui.study"] == "tiny"
        assert run.data.tags["mlflow.parentRunId"] == runs["study:tiny"].info.run_id
    # per-epoch rows as step metrics, equal to the store's
    from rttui import api

    with api.open_store(tiny_run_db) as s:
        rows = s.epoch_records("tiny")
    c = _client(uri)
    for rid, run in runs.items():
        if rid == "study:tiny":
            continue
        mine = [(e["epoch"], e["loss"]) for e in rows if e["kind"] == "run" and e["unit_id"] == rid]
        got = [(p.step, p.value) for p in c.get_metric_history(run.info.run_id, "train/loss")]
        assert sorted(got) == sorted(mine) and mine
    # the study's figures and its study file as artifacts of the study run
    study_id = runs["study:tiny"].info.run_id
    figures = {Path(a.path).name for a in c.list_artifacts(study_id, "figures")}
    assert {"curves.png", "strategies.png"} <= figures
    assert [Path(a.path).name for a in c.list_artifacts(study_id, "study")] == ["tiny.toml"]


def test_mlflow_second_push_creates_no_run_and_leaves_the_same_history(
    tiny_run_db: Path, env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("mlflow", reason=MLFLOW_SKIP)
    uri = f"sqlite:///{env / 'mlflow.db'}"
    argv = ["export", "--db", str(tiny_run_db), "--to", "mlflow", "--tracking-uri", uri, "--experiment", "e1"]
    assert run_cli(argv, monkeypatch, capsys)[0] == 0
    first = _runs(uri, "e1")
    hist1 = _histories(uri, first)
    code, out, err = run_cli(argv, monkeypatch, capsys)
    assert code == 0, err
    assert "0 run(s) created, 3 updated" in out
    second = _runs(uri, "e1")
    assert {k: r.info.run_id for k, r in second.items()} == {k: r.info.run_id for k, r in first.items()}
    assert _histories(uri, second) == hist1
    assert sum(len(v) for v in hist1.values()) > len(hist1)  # some history has several steps (source epochs)


def test_mlflow_unreachable_server_is_one_line_in_seconds_and_writes_nothing(
    tiny_run_db: Path, env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("mlflow", reason=MLFLOW_SKIP)
    before = hashlib.sha256(tiny_run_db.read_bytes()).hexdigest()
    t0 = time.monotonic()
    code, _out, err = run_cli(
        ["export", "--db", str(tiny_run_db), "--to", "mlflow", "--tracking-uri", "http://127.0.0.1:9"],
        monkeypatch,
        capsys,
    )
    assert time.monotonic() - t0 < 10
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "http://127.0.0.1:9" in lines[0] and "no MLflow server answers" in lines[0] and "mlflow server" in lines[0]
    assert hashlib.sha256(tiny_run_db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in env.iterdir()) == ["wandb-dir"]  # no mlruns, no mlflow.db


def test_mlflow_without_the_extra_names_the_install(
    tiny_run_db: Path, env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    code, _out, err = run_cli(["export", "--db", str(tiny_run_db), "--to", "mlflow"], monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "pip install 'rttui[mlflow]'" in lines[0], err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--to", "comet"], "not a tracker"),
        (["--to", "mlflow", "--project", "p"], "W&B setting"),
        (["--to", "wandb", "--tracking-uri", "sqlite:///x.db"], "MLflow setting"),
        (["--tracking-uri", "sqlite:///x.db"], "add --to mlflow"),
        (["--to", "mlflow", "--format", "csv"], "drop --format"),
    ],
)
def test_mlflow_and_wandb_options_that_do_not_fit_are_one_line(
    argv: list[str],
    words: str,
    tiny_run_db: Path,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _out, err = run_cli(["export", "--db", str(tiny_run_db), *argv], monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and words in lines[0], err
    assert not (env / "x.db").exists()


def test_mlflow_and_wandb_are_not_imported_unless_used() -> None:
    import subprocess

    code = (
        "import sys, rttui.api, rttui.cli.results, rttui.runner.coordinator, rttui.runner.tracking;"
        "bad = [m for m in ('mlflow', 'wandb') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
