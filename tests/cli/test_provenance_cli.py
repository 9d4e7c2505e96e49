"""Provenance and the attack-strength audit where people see them, on one tiny study with a deliberately weak
PGD (1 step of 0.25 eps, no random start): every export record carries the environment it was made in,
`status --run` shows it, the report lists each environment; the weak PGD is flagged in `compare` (CLI, Markdown,
LaTeX, TUI Results), in the JSON export, the checks and the report; a database written before provenance opens
with its old rows saying "not recorded" (schema migration v1 -> v2)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.studies import tiny_study

STUDY = tiny_study(
    study={"name": "prov"},
    target={"test_size": 40, "train_size": 100},
    eval={"epsilons": [0.03, 0.1]},
    attacks={"pgd": {"steps": 1, "rel_step_size": 0.25, "random_start": False}},
    grid=[{"models": ["test_resnet"], "strategies": ["full"]}],
)


def _rttui(*args: str) -> subprocess.CompletedProcess:
    code = "from rttui.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def prov_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rttui import api

    d = tmp_path_factory.mktemp("prov")
    f = d / "prov.toml"
    f.write_text(STUDY)
    db = d / "prov.db"
    api.run_study(api.load_study(f), db)
    return db


def _as_v1(src: Path, dst: Path) -> None:
    """The same database as schema v1 wrote it: no environments/audits tables, no env_id columns."""
    shutil.copy(src, dst)
    con = sqlite3.connect(dst)
    with con:
        for t in ("environments", "audits"):
            con.execute(f"drop table if exists {t}")
        con.execute("drop index if exists idx_audits_run_id")
        for t in ("sources", "runs", "evaluations"):
            con.execute(f"alter table {t} drop column env_id")
        con.execute("update meta set value = '1' where key = 'schema_version'")
    con.close()


def test_provenance_every_export_record_has_env(prov_db: Path) -> None:
    from rttui.runner import provenance

    r = _rttui("export", "--format", "json", "--db", str(prov_db))
    assert r.returncode == 0, r.stderr
    recs = json.loads(r.stdout)
    assert recs
    here = provenance.collect()
    for rec in recs:
        env = rec["env"]
        assert {"rttui", "python", "torch", "timm", "device", "env_id"} <= set(env)
        assert env["torch"] == here["torch"] and env["python"] == here["python"]
        assert rec["env_id"] == env["env_id"]


def test_provenance_status_run_shows_the_environment(prov_db: Path) -> None:
    from rttui import api
    from rttui.runner import provenance

    rid = api.status(prov_db)["runs"][0]["id"]
    r = _rttui("status", "--run", rid, "--db", str(prov_db))
    assert r.returncode == 0, r.stderr
    here = provenance.collect()
    assert "environment" in r.stdout and here["torch"] in r.stdout and here["env_id"] in r.stdout
    assert "(same as the run)" in r.stdout
    (run,) = api.study_progress(prov_db, "prov")["runs"]  # the TUI monitor's run detail shows this line
    assert here["torch"] in run["env_line"] and here["timm"] in run["env_line"]
    bad = _rttui("status", "--run", "nope", "--db", str(prov_db))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_provenance_report_lists_each_environment(prov_db: Path, tmp_path: Path) -> None:
    from rttui import api
    from rttui.runner import provenance

    out = api.report(prov_db, "prov", tmp_path / "rep")
    text = Path(out["index"]).read_text()
    assert "## Environments" in text and f"### {provenance.collect()['env_id']}" in text
    assert "Mixed environments" not in text


def test_provenance_old_database_opens_and_says_not_recorded(prov_db: Path, tmp_path: Path) -> None:
    from rttui import api
    from rttui.store import Store
    from rttui.store.db import SCHEMA_VERSION

    old = tmp_path / "v1.db"
    _as_v1(prov_db, old)
    recs = api.export_records(old)  # read-only open of a v1 file: no migration, no error
    assert recs and all(r["env"] is None and r["audit"] is None for r in recs)
    rid = recs[0]["run_id"]
    st = api.status(old, run_id=rid)
    assert st["run"]["env"] is None and ("environment", "not recorded") in st["run"]["env_rows"]
    r = _rttui("status", "--run", rid, "--db", str(old))
    assert r.returncode == 0 and "not recorded" in r.stdout, r.stderr
    with Store.open(old, write=True) as s:  # the writer migrates to the current version, old rows NULL
        assert s.schema_version == SCHEMA_VERSION
        meta = dict(s.conn.execute("select key, value from meta").fetchall())
        assert meta["schema_version"] == str(SCHEMA_VERSION) and "environments" in meta["migration_2"]
        assert "reattacked" in meta["migration_3"] and "reattacked" in s.db["audits"].columns_dict
        assert s.unit_env("run", rid) is None
    mixed = [dict(r) for r in api.export_records(prov_db)] + [{**r, "env_id": None, "env": None} for r in recs]
    from rttui.analysis.environment import mixed_envs_warning

    assert "mixed environments: cells from 2 environments" in (mixed_envs_warning(mixed) or "")
    assert mixed_envs_warning(recs) is None


def test_audit_flags_the_weak_pgd_in_compare_export_checks_report_and_tui(prov_db: Path, tmp_path: Path) -> None:
    from rttui import api
    from rttui.tui.screens.results import comparison_view

    r = _rttui("compare", "--db", str(prov_db), "--study", "prov", "--attack", "pgd")
    assert r.returncode == 0, r.stderr
    assert "†" in r.stdout and "flagged by the attack-strength audit" in " ".join(r.stdout.split())
    assert "a stronger attack (reference APGD-CE, 10 iterations) fooled" in " ".join(r.stdout.split())
    recs = json.loads(_rttui("export", "--format", "json", "--db", str(prov_db)).stdout)
    pgd = [x for x in recs if x["attack"] == "pgd"]
    assert pgd and any(x["audit"]["flagged"] for x in pgd)
    for x in (x for x in recs if x["attack"] != "worst-case"):  # FGSM and PGD are both audited by default
        a = x["audit"]
        assert {"n", "survived_attack", "survived_stronger", "flagged", "stronger"} <= set(a)
        assert a["stronger"]["apgd"]["implementation"] == "reference" and a["stronger"]["settings"]["enabled"]
    comp = api.compare(prov_db, "prov", "pgd")
    assert "†" in api.export_table(comp, "md") and r"\dagger" in api.export_table(comp, "latex")
    view = comparison_view(comp)
    assert any("†" in c for t in view for row in t["body"] for c in row)
    assert any("attack-strength audit" in t["caption"] for t in view)
    checks = _rttui("checks", "--db", str(prov_db))
    assert "pgd is too weak" in " ".join(checks.stdout.split()), checks.stdout
    text = Path(api.report(prov_db, "prov", tmp_path / "rep")["index"]).read_text()
    assert "## Attack-strength audit" in text and "flagged**" in text


def test_audit_caption_names_the_whole_threat_model(prov_db: Path) -> None:
    from rttui import api

    (t,) = api.compare(prov_db, "prov", "pgd", eps=0.03).tables
    for part in ("steps=1", "step_size=", "restarts=1", "random_start=False", "norm=linf", "implementation=rttui"):
        assert part in t.caption, (part, t.caption)
