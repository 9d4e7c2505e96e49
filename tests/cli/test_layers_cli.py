"""`rttui layers`: a run's layer analysis as a table or JSON; computed on demand for any finished run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rttui import api
from rttui.cli.app import app
from rttui.store import Store

runner = CliRunner()


def _rttui(*args: str) -> subprocess.CompletedProcess:
    code = "from rttui.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def db_copy(tiny_run_db: Path, tmp_path: Path) -> Path:
    """A writable copy of the shared tiny database and its checkpoints."""
    dst = tmp_path / "copy"
    shutil.copytree(tiny_run_db.parent, dst)
    return dst / tiny_run_db.name


def _run_ids(db: Path) -> dict[str, str]:
    return {r["strategy"]: r["id"] for r in api.status(db)["runs"]}


def test_layers_json_shape_on_demand_and_stored(db_copy: Path) -> None:
    rid = _run_ids(db_copy)["full"]
    with Store.open(db_copy) as s:
        assert s.layers(rid) == []
    r = runner.invoke(app, ["layers", "--db", str(db_copy), "--run", rid, "--format", "json", "--images", "32"])
    assert r.exit_code == 0, r.output
    recs = json.loads(r.stdout)
    with Store.open(db_copy) as s:
        info = json.loads(s.unit("run", rid)["info"])
        stored = s.layers(rid)
    assert isinstance(recs, list) and len(recs) == info["n_groups"]
    for i, rec in enumerate(recs):
        assert {"group", "grad_norm", "cka", "frozen", "n_params", "n_images", "run_id"} <= set(rec)
        assert rec["group_idx"] == i and rec["run_id"] == rid and rec["n_images"] == 32
        assert rec["grad_norm"] > 0 and -1e-9 <= rec["cka"] <= 1 + 1e-9 and rec["frozen"] is False
    # Stored: a second call reads the same numbers back without recomputing.
    assert [x["cka"] for x in stored] == [x["cka"] for x in recs]
    r2 = runner.invoke(app, ["layers", "--db", str(db_copy), "--run", rid, "--format", "json"])
    assert json.loads(r2.stdout) == recs
    table = runner.invoke(app, ["layers", "--db", str(db_copy), "--run", rid])
    assert table.exit_code == 0 and "CKA" in table.stdout and recs[0]["group"] in table.stdout


def test_layers_on_demand_matches_what_the_run_stored(db_copy: Path) -> None:
    rid = _run_ids(db_copy)["layer_freezing"]
    stored = api.layers(db_copy, rid)
    assert stored, "layer-freezing runs store their analysis while they run"
    again = api.layers(db_copy, rid, n_images=stored[0]["n_images"], recompute=True, store=False)
    assert [r["frozen"] for r in again] == [r["frozen"] for r in stored]
    for a, b in zip(again, stored, strict=True):
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
        assert a["cka"] == pytest.approx(b["cka"], abs=1e-6)


def test_layers_refuses_to_write_while_a_runner_holds_the_db(db_copy: Path) -> None:
    import os
    import socket
    import sqlite3

    rid = _run_ids(db_copy)["full"]
    con = sqlite3.connect(db_copy)
    with con:
        con.execute(
            "insert into locks (name, pid, host, started, study) values ('runner', ?, ?, 0, 'tiny')",
            (os.getpid(), socket.gethostname()),
        )
    con.close()
    r = _rttui("layers", "--db", str(db_copy), "--run", rid)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "is running in process" in r.stderr and "--no-store" in r.stderr
    with Store.open(db_copy) as s:
        assert s.layers(rid) == []
    r = _rttui("layers", "--db", str(db_copy), "--run", "nope")
    assert r.returncode == 2 and "not in" in r.stderr
