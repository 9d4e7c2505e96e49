"""`rttui datasets` lists every dataset name a study accepts, with where it looks for files."""

from __future__ import annotations

import json

import pytest

from rttui.cli import main
from rttui.study.catalog import DATASETS


def test_datasets_lists_names_and_file_locations(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr("sys.argv", ["rttui", "datasets", "--format", "json"])
    with pytest.raises(SystemExit) as ex:
        main()
    rows = json.loads(capsys.readouterr().out)
    assert ex.value.code in (0, None)
    names = {r["name"] for r in rows}
    assert names == set(DATASETS) >= {"digits", "cifar10", "cifar100", "imagenet_subset", "chestxray8", "imagefolder"}
    assert all(r["files"] for r in rows)
    assert "Data_Entry_2017.csv" in next(r["files"] for r in rows if r["name"] == "chestxray8")
