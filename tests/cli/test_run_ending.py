"""What `rttui run` prints when the study ends: the study's tables as `rttui compare` shows them (audit marks †
included), then one summary line for the audit and one for the other checks, never a table of every warning."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from rttui import api
from rttui.cli.app import app
from tests.studies import tiny_study

# The tiny study with the audit re-attacking every survivor of a PGD crippled on purpose (one step of 5% of eps,
# no random start): the reference attack fools many images it left, so the audit flags its cells.
AUDITED = tiny_study(
    study={"name": "ending"},
    eval={"audit": {"fraction": 1.0}},
    attacks={"pgd": {"steps": 1, "rel_step_size": 0.05, "random_start": False}},
)


def test_a_run_ends_with_its_marked_tables_and_one_line_per_kind_of_check(tmp_path: Path) -> None:
    f = tmp_path / "ending.toml"
    f.write_text(AUDITED)
    db = tmp_path / "ending.db"
    r = CliRunner().invoke(app, ["run", str(f), "--db", str(db), "-q"], terminal_width=200)
    assert r.exit_code == 0, r.output
    comp = api.compare(db, "ending", None, None, None, "eps", None, metrics=["clean", "adv"])
    flagged = {t.attack: sum(c.flagged for c in t.cells.values()) for t in comp.tables}
    assert any(flagged.values()), "the audit flagged nothing: the test cannot see the marks"
    for t in comp.tables:
        assert t.title in r.output
    assert "†" in r.output
    (audit,) = [line for line in r.output.splitlines() if line.startswith("audit:")]
    first = next(a for a, n in flagged.items() if n)
    assert f"{first.upper()} overstated in {flagged[first]} of" in audit
    assert "rttui checks --db" in audit
    assert "Sanity checks that did not pass" not in r.output
    assert "too weak" not in r.output  # the audit's long messages stay in `rttui checks`
