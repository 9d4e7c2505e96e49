"""A 3-seed tiny study database for the results commands (compare, ttest, plot, report, export)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.studies import tiny_study

SEEDS3_STUDY = tiny_study(
    study={"name": "tiny3", "seeds": [0, 1, 2]},
    source={"epochs": 1, "train_size": 150},
    target={"test_size": 40, "train_size": 100},
    eval={"epsilons": [0.03, 0.1]},
    attacks={"pgd": {"steps": 2}},
)


@pytest.fixture(scope="session")
def seeds3_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seeds of two strategies on one tiny model: enough for paired tests, run once per session."""
    from rttui import api

    d = tmp_path_factory.mktemp("seeds3")
    f = d / "tiny3.toml"
    f.write_text(SEEDS3_STUDY)
    db = d / "tiny3.db"
    api.run_study(api.load_study(f), db)
    return db
