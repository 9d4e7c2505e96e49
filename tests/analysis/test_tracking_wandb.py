"""`rttui export --to wandb --mode offline`: the offline run files W&B writes (read back as `wandb sync` would
upload them) hold `rttui export --format json`'s numbers; a second push leaves one local copy per run with the
same history; online mode without credentials is refused before any network call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rttui.analysis.tracking import RECORD_METRICS, metric_name, wandb_id
from tests.entry import run_cli
from tests.trackers import quiet_trackers, read_wandb_run


@pytest.fixture
def wandb_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    d = quiet_trackers(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    return d


def _local_runs(wandb_dir: Path) -> dict[str, Path]:
    folders = sorted((wandb_dir / "wandb").glob("offline-run-*"))
    ids = [f.name.split("-", 3)[-1] for f in folders]
    assert len(ids) == len(set(ids)), f"two local copies of one run: {ids}"
    return dict(zip(ids, folders, strict=True))


def test_wandb_offline_push_reads_back_as_the_json_export(
    tiny_run_db: Path, wandb_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("wandb", reason="wandb is the wandb extra")
    argv = ["export", "--db", str(tiny_run_db), "--to", "wandb", "--mode", "offline", "--project", "p1"]
    code, out, err = run_cli(argv, monkeypatch, capsys)
    assert code == 0, err
    assert "3 run(s) created" in out and "offline" in out
    records = json.loads(run_cli(["export", "--db", str(tiny_run_db)], monkeypatch, capsys)[1])
    local = _local_runs(wandb_dir)
    assert set(local) == {wandb_id(r["run_id"]) for r in records} | {wandb_id("study:tiny")}
    runs = {k: read_wandb_run(f) for k, f in local.items()}
    for rec in records:
        summary = runs[wandb_id(rec["run_id"])]["summary"]
        for what in RECORD_METRICS:
            if isinstance(rec.get(what), int | float):
                assert summary[metric_name(rec["attack"], rec["eps"], what)] == rec[what], what
    one = runs[wandb_id(records[0]["run_id"])]
    assert one["config"]["model"] == "test_resnet" and one["config"]["run_id"] == records[0]["run_id"]
    assert one["config"]["rttui"]["rttui.audit"] in ("passed", "flagged") and one["config"]["rttui"]["rttui.env.torch"]
    assert "study:tiny" in one["tags"] and any(t.startswith("audit:") for t in one["tags"])
    steps = [(h["_step"], h["source/loss"]) for h in one["history"] if "source/loss" in h]
    assert [s for s, _ in steps] == [1, 2]
    study = runs[wandb_id("study:tiny")]
    assert {"figures/curves.png", "study/tiny.toml"} <= set(study["files"])
    assert (local[wandb_id("study:tiny")] / "files" / "figures" / "curves.png").stat().st_size > 0


def test_wandb_second_offline_push_replaces_its_local_copy(
    tiny_run_db: Path, wandb_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("wandb", reason="wandb is the wandb extra")
    argv = ["export", "--db", str(tiny_run_db), "--to", "wandb", "--mode", "offline"]
    assert run_cli(argv, monkeypatch, capsys)[0] == 0
    first = {k: read_wandb_run(f) for k, f in _local_runs(wandb_dir).items()}
    code, out, err = run_cli(argv, monkeypatch, capsys)
    assert code == 0, err
    assert "0 run(s) created, 3 updated" in out
    second = {k: read_wandb_run(f) for k, f in _local_runs(wandb_dir).items()}
    assert set(second) == set(first)

    def rows(run: dict) -> list[dict]:
        return [{k: v for k, v in h.items() if not k.startswith("_") or k == "_step"} for h in run["history"]]

    for k in first:
        assert rows(second[k]) == rows(first[k])
        assert {m: v for m, v in second[k]["summary"].items() if not m.startswith("_")} == {
            m: v for m, v in first[k]["summary"].items() if not m.startswith("_")
        }


def test_wandb_online_without_credentials_is_refused_before_any_call(
    tiny_run_db: Path, wandb_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    code, _out, err = run_cli(["export", "--db", str(tiny_run_db), "--to", "wandb"], monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "wandb login" in lines[0] and "--mode offline" in lines[0]
    assert "wandb" not in sys.modules  # refused before W&B was even imported, so before any network call
    assert not (wandb_dir / "wandb").exists()


def test_wandb_credentials_from_netrc_count(wandb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rttui.analysis.tracking import wandb_credentials

    assert not wandb_credentials()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password abc123\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert wandb_credentials()
