"""The CLI: one-line errors with non-zero exits, JSON alone on stdout, and no torch for --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from rttui.cli.app import app

runner = CliRunner()


def _rttui(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from rttui.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; sys.argv=['rttui','--help']\nfrom rttui.cli import main\ntry: main()\nexcept SystemExit: pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NOTORCH', file=sys.stderr)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "NOTORCH" in r.stderr, r.stderr
    assert "run" in r.stdout and "export" in r.stdout
    r = subprocess.run(
        [sys.executable, "-c", "import rttui, rttui.api, sys; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.stdout.strip() == "False"


def test_validate_bad_epsilon_is_one_line_nonzero(tmp_path: Path, tiny_study_text: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(tiny_study_text.replace("[0.0, 0.03, 0.1]", "[0.03, 8]"))
    r = _rttui("validate", str(f))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "epsilon 8 is outside [0, 1]" in lines[0] and "Traceback" not in r.stderr


def test_validate_unknown_model(tmp_path: Path, tiny_study_text: str) -> None:
    f = tmp_path / "m.toml"
    f.write_text(tiny_study_text.replace('"test_resnet"', '"resnet_5o"'))
    r = _rttui("validate", str(f))
    assert r.returncode == 2 and "unknown timm model 'resnet_5o'" in r.stderr and "Traceback" not in r.stderr


def test_read_only_commands_never_create_a_database(tmp_path: Path) -> None:
    for cmd in (["status"], ["export", "--format", "json"], ["checks"]):
        r = _rttui(*cmd, "--db", str(tmp_path / "none.db"))
        assert r.returncode == 2 and "no such database" in r.stderr
    r = _rttui("status", cwd=tmp_path, env={"RTTUI_DB": ""})
    assert r.returncode == 2
    assert not list(tmp_path.iterdir())


def test_rttui_db_env_is_the_default(tiny_run_db: Path) -> None:
    r = runner.invoke(app, ["status", "--format", "json"], env={"RTTUI_DB": str(tiny_run_db)})
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["studies"][0]["name"] == "tiny"


def test_export_json_alone_on_stdout(tiny_run_db: Path) -> None:
    r = _rttui("export", "--db", str(tiny_run_db), "--format", "json")
    assert r.returncode == 0, r.stderr
    recs = json.loads(r.stdout)
    # 2 runs x 2 attacks x 3 eps, and the per-sample worst case over both per run and eps
    assert len(recs) == 12 + 6 and {r["attack"] for r in recs} == {"fgsm", "pgd", "worst-case"}


def test_plan_lists_done_runs(tiny_run_db: Path, tmp_path: Path, tiny_study_text: str) -> None:
    f = tmp_path / "t.toml"
    f.write_text(tiny_study_text.replace("seeds = [0]", "seeds = [0, 1]"))
    r = runner.invoke(app, ["plan", str(f), "--db", str(tiny_run_db), "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert sorted(x["state"] for x in rows) == ["done", "done", "new", "new"]


def test_status_and_checks_tables(tiny_run_db: Path) -> None:
    r = runner.invoke(app, ["status", "--db", str(tiny_run_db)])
    assert r.exit_code == 0 and "layer_freezing" in r.stdout
    r = runner.invoke(app, ["checks", "--db", str(tiny_run_db), "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout)


def test_bad_format_is_one_line(tiny_run_db: Path) -> None:
    r = _rttui("export", "--db", str(tiny_run_db), "--format", "xml")
    assert r.returncode == 2 and "--format 'xml' is not supported" in r.stderr
