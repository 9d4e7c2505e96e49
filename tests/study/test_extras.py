"""Optional extras a study needs are named before anything runs: an adapter strategy without peft (the `adapters`
extra) is one line naming the strategy and the install command, exit 2, nothing stored."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from rttui.cli import main
from tests.studies import tiny_study


@pytest.mark.parametrize("strategy", ["adapter", "freeze_adapter"])
def test_an_adapter_study_without_peft_is_refused_in_one_line(
    strategy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    f = tmp_path / "s.toml"
    f.write_text(tiny_study(grid=[{"models": ["test_resnet"], "strategies": [strategy]}]))
    db = tmp_path / "a.db"
    for argv in (["validate", str(f)], ["run", str(f), "--db", str(db), "-q"]):
        monkeypatch.setattr(sys, "argv", ["rttui", *argv])
        with pytest.raises(SystemExit) as exc:
            main()
        err = capsys.readouterr().err.splitlines()
        assert exc.value.code == 2 and len(err) == 1, err
        assert f"{strategy} needs peft (the adapters extra)" in err[0] and "pip install 'rttui[adapters]'" in err[0]
    assert not db.exists()


def test_with_peft_the_adapter_study_validates() -> None:
    pytest.importorskip("peft", reason="peft is in the test extra (rttui[adapters])")
    from rttui.study import parse_study

    spec = parse_study(tiny_study(grid=[{"models": ["test_resnet"], "strategies": ["adapter"]}]))
    assert spec is not None
