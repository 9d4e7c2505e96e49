"""The torchattacks catalogue through the faces: a study naming `ta:` attacks runs, is stored like any other
attack and shows in `rttui compare`; a bad or unavailable name is one line and exit 2, before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rttui import api
from rttui.cli.app import app
from tests.studies import tiny_study

pytest.importorskip("torchattacks", reason="the torchattacks extra is in the test extra")

runner = CliRunner()

TA_STUDY = tiny_study(
    study={"name": "ta"},
    source={"epochs": 1, "train_size": 150},
    target={"test_size": 30, "train_size": 100},
    eval={"epsilons": [0.03, 0.1, 1.0]},
    attacks={"fgsm": {}, "pgd": None, "ta:CW": {"steps": 30, "lr": 0.05}, "ta:EOTPGD": {"steps": 3}},
    grid=[{"models": ["test_resnet"], "strategies": ["full"]}],
)


def _rttui(*args: str, hide_torchattacks: bool = False) -> subprocess.CompletedProcess:
    hide = "import sys; sys.modules['torchattacks'] = None\n" if hide_torchattacks else ""
    code = f"{hide}import sys; sys.argv = ['rttui', *sys.argv[1:]]\nfrom rttui.cli import main\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env={**os.environ}, timeout=300
    )


def test_torchattacks_catalog_study_is_stored_and_compared(tmp_path: Path) -> None:
    f = tmp_path / "ta.toml"
    f.write_text(TA_STUDY)
    db = tmp_path / "ta.db"
    r = runner.invoke(app, ["run", str(f), "--db", str(db), "-q"])
    assert r.exit_code == 0, r.output
    recs = api.export_records(db, "ta")
    by = {(x["attack"], x["eps"]): x for x in recs}
    assert {a for a, _ in by} == {"fgsm", "ta:CW", "ta:EOTPGD", "worst-case"}
    cw = [by[("ta:CW", e)] for e in (0.03, 0.1, 1.0)]
    assert [x["norm"] for x in cw] == ["l2"] * 3  # CW's threat model, recorded with every row
    assert cw[0]["attack_params"]["steps"] == 30 and cw[0]["attack_params"]["lr"] == 0.05
    assert "torchattacks-" in cw[0]["path"] and "projected" in cw[0]["path"]
    assert cw[0]["adv_acc"] >= cw[1]["adv_acc"] >= cw[2]["adv_acc"]
    eot = by[("ta:EOTPGD", 0.1)]
    assert eot["step_size"] == pytest.approx(0.025)  # rel_alpha 0.25 x eps
    assert eot["adv_acc"] < eot["clean_acc"]
    checks = [c for c in api.checks(db) if c["message"].startswith("ta:")]
    assert {c["check"] for c in checks} >= {"adv_le_clean", "monotone_eps"}
    assert all(c["level"] != "warning" for c in checks if c["check"] == "adv_le_clean")
    out = runner.invoke(app, ["compare", "--db", str(db), "--attack", "ta:CW", "--eps", "1.0"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.stdout.split())  # the caption wraps at the runner's width
    assert "attack=ta:CW" in text and "(L2, [0, 1] pixels)" in text
    data = json.loads(
        runner.invoke(app, ["compare", "--db", str(db), "--attack", "ta:CW", "--eps", "1.0", "-f", "json"]).stdout
    )
    (t,) = data["tables"]
    (cell,) = t["cells"]
    assert cell["adv"]["values"] == [cw[2]["adv_acc"]]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ta:Squre", "unknown torchattacks attack 'ta:Squre'; did you mean 'ta:Square'?"),
        ("ta:pgd", "did you mean 'ta:PGD'"),
        ("ta:JSMA", "ta:JSMA is not offered: an L0 attack"),
    ],
)
def test_torchattacks_catalog_bad_name_is_one_line(tmp_path: Path, name: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(tiny_study(attacks={name: {}}))
    r = _rttui("validate", str(f))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr


def test_torchattacks_catalog_bad_parameter_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(tiny_study(attacks={"ta:Square": {"n_queries": 1.5, "loss": "hinge"}}))
    r = _rttui("validate", str(f))
    assert r.returncode == 2
    assert "ta:Square].n_queries: expected int, got 1.5" in r.stderr
    assert "ta:Square].loss: unknown value 'hinge'" in r.stderr


def test_torchattacks_catalog_missing_extra_names_the_extra(tmp_path: Path) -> None:
    """The extra hidden from this process: `rttui run` refuses at once, naming the extra; nothing is stored."""
    f = tmp_path / "ta.toml"
    f.write_text(TA_STUDY)
    r = _rttui("run", str(f), "--db", str(tmp_path / "x.db"), hide_torchattacks=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2, lines  # two names, one line each
    assert all("needs the torchattacks extra" in ln and "pip install 'rttui[torchattacks]'" in ln for ln in lines)
    assert not (tmp_path / "x.db").exists()
