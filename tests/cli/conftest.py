"""A 3-seed tiny study database for the results commands (compare, ttest, plot, report, export)."""

from __future__ import annotations

from pathlib import Path

import pytest

SEEDS3_STUDY = """
[study]
name = "tiny3"
seeds = [0, 1, 2]

[source]
dataset = "digits"
classes = [0, 1, 2, 3, 4]
epochs = 1
lr = 2e-3
train_size = 150

[target]
dataset = "digits"
classes = [5, 6, 7, 8, 9]
image_size = 16
test_size = 40
train_size = 100

[train]
lr = 2e-3
epochs = 1

[eval]
epsilons = [0.03, 0.1]

[attacks.fgsm]
[attacks.pgd]
steps = 2

[[grid]]
models = ["test_resnet"]
strategies = ["full", "layer_freezing"]
"""


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
