"""A study's `[track]` table: each run is pushed as it is stored (W&B offline, MLflow's SQLite store); the table
never changes a run id; a tracker that fails mid-study is one warning event and the study finishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from rttui.errors import StudyError
from rttui.study import make_plan, parse_study
from tests.studies import tiny_study
from tests.trackers import MLFLOW_SKIP, quiet_trackers, read_wandb_run


def test_track_table_never_changes_run_ids() -> None:
    plain = make_plan(parse_study(tiny_study()))
    tracked = make_plan(parse_study(tiny_study(track={"to": "wandb", "mode": "offline"})))
    assert [r.id for r in tracked.runs] == [r.id for r in plain.runs]
    assert [e.id for e in tracked.evals] == [e.id for e in plain.evals]


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"to": "comet"}, "track.to: unknown value 'comet'"),
        ({"mode": "offline"}, "track.to: missing"),
        ({"to": "wandb", "tracking_uri": "sqlite:///m.db"}, "track.tracking_uri: is a mlflow setting"),
        ({"to": "mlflow", "projekt": "p"}, "track.projekt: unknown key"),
    ],
)
def test_track_table_mistakes_are_named(table: dict, words: str) -> None:
    with pytest.raises(StudyError) as exc:
        parse_study(tiny_study(track=table))
    assert words in str(exc.value)


def test_track_without_the_extra_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(StudyError) as exc:
        parse_study(tiny_study(track={"to": "wandb"}))
    assert "pip install 'rttui[wandb]'" in str(exc.value)


def test_track_wandb_pushes_each_run_live_and_a_failed_push_only_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb", reason="wandb is the wandb extra")
    from rttui import api
    from rttui.analysis import tracking

    wandb_dir = quiet_trackers(monkeypatch, tmp_path)
    real_push = tracking.push
    calls: list[str] = []

    def flaky(target, runs, study):  # the first push fails as a server would; the others go through
        calls.append(runs[0].key)
        if len(calls) == 1:
            raise ConnectionError("tracker went away")
        return real_push(target, runs, study)

    monkeypatch.setattr("rttui.runner.tracking.push", flaky)
    f = tmp_path / "t.toml"
    f.write_text(tiny_study(track={"to": "wandb", "mode": "offline", "project": "live"}))
    events: list = []
    res = api.run_study(api.load_study(f), tmp_path / "t.db", listener=events.append)
    assert res["failed"] == 0 and res["done"] == 2, res
    warned = [e for e in events if isinstance(e, api.events.TrackerFailed)]
    assert len(warned) == 1 and "tracker went away" in warned[0].message and "rttui export --to" in warned[0].message
    assert "\n" not in warned[0].message
    (folder,) = (wandb_dir / "wandb").glob("offline-run-*")  # the second run, pushed as it was stored
    run = read_wandb_run(folder)
    assert run["id"] == f"rttui-{calls[1]}"
    assert any(k.endswith("/adv_acc") for k in run["summary"])


def test_track_mlflow_pushes_each_run_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow", reason=MLFLOW_SKIP)
    from mlflow.tracking import MlflowClient

    from rttui import api

    quiet_trackers(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    f = tmp_path / "t.toml"
    f.write_text(tiny_study(track={"to": "mlflow", "tracking_uri": uri}))
    events: list = []
    res = api.run_study(api.load_study(f), tmp_path / "t.db", listener=events.append)
    assert res["done"] == 2 and not [e for e in events if isinstance(e, api.events.TrackerFailed)]
    c = MlflowClient(uri)
    runs = c.search_runs([c.get_experiment_by_name("tiny").experiment_id])
    recs = api.export_records(tmp_path / "t.db")
    assert {r.data.tags["rttui.run_id"] for r in runs} == {r["run_id"] for r in recs}
    for r in runs:
        mine = [x for x in recs if x["run_id"] == r.data.tags["rttui.run_id"] and x["attack"] == "pgd"]
        assert mine and all(r.data.metrics[f"pgd/eps_{x['eps']:g}/adv_acc"] == x["adv_acc"] for x in mine)
