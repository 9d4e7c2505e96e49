"""The Export screen's records file is byte for byte what `rttui export` writes: one writer for both."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rttui.cli.app import app as cli
from rttui.tui import make_app
from tests.tui.helpers import type_into, wait_for


@pytest.mark.parametrize("fmt", ["csv", "json"])
async def test_export_screen_records_match_rttui_export(
    demo_dir: Path, frozen_clock, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.chdir(demo_dir)
    r = CliRunner().invoke(cli, ["export", "--db", "demo.db", "--study", "demo", "--format", fmt])
    assert r.exit_code == 0, r.output
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    app.open_study("demo", "studies/demo.toml")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("7")
        await wait_for(pilot, lambda: app.current_mode == "export" and app.screen.preview, tries=400)
        x = app.screen
        x.query_one("#x-what").value = "records"
        await wait_for(pilot, lambda: x.query_one("#x-fmt").value == "csv")
        if fmt == "json":
            x.query_one("#x-fmt").value = "json"
        await type_into(pilot, "#x-path", f"out/records.{fmt}")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: Path(f"out/records.{fmt}").exists(), tries=400)
    written = Path(f"out/records.{fmt}").read_bytes()
    assert written == r.stdout_bytes
    if fmt == "csv":  # the export command's columns: every parameter of a number, one column each
        header = next(csv.reader(io.StringIO(written.decode())))
        assert header[:3] == ["run_id", "study", "dataset"] and {"attack", "eps", "seed", "adv_acc", "mode"} <= set(
            header
        )
