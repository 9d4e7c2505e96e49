"""`rttui ttest --metric clean_acc`: clean accuracy does not depend on the attack, so each configuration is
tested once (no attack or eps column) and the caption names the Holm family it corrected over."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rttui.cli.app import app

runner = CliRunner()


def test_clean_accuracy_is_tested_once_per_configuration(seeds3_db: Path) -> None:
    args = ["ttest", "--db", str(seeds3_db), "--axis", "strategy", "--a", "layer_freezing", "--b", "full"]
    clean = json.loads(runner.invoke(app, [*args, "--metric", "clean_acc", "--format", "json"]).output)
    adv = json.loads(runner.invoke(app, [*args, "--format", "json"]).output)
    assert len(clean) == 1 and "attack" not in clean[0] and "eps" not in clean[0]
    assert len(adv) == len({(r["attack"], r["eps"]) for r in adv}) > 1
    r = runner.invoke(app, [*args, "--metric", "clean_acc"], terminal_width=300)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "Holm over 1 comparison(s)" in text or "Holm over 0 comparison(s)" in text
    assert "clean_acc does not depend on the attack, so each configuration is tested once" in text
