"""Shared fixtures: a tiny offline study that runs in seconds on a CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

TINY_STUDY = """
[study]
name = "tiny"
seeds = [0]

[source]
dataset = "digits"
classes = [0, 1, 2, 3, 4]
epochs = 2
lr = 2e-3
train_size = 300

[target]
dataset = "digits"
classes = [5, 6, 7, 8, 9]
image_size = 16
test_size = 60
train_size = 200

[train]
lr = 2e-3
epochs = 1

[eval]
epsilons = [0.0, 0.03, 0.1]

[attacks.fgsm]
[attacks.pgd]
steps = 3

[[grid]]
models = ["test_resnet"]
strategies = ["full", "layer_freezing"]
"""


@pytest.fixture
def tiny_study_text() -> str:
    return TINY_STUDY


@pytest.fixture
def tiny_study_file(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_STUDY)
    return p


@pytest.fixture(scope="session")
def tiny_run_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding the tiny study, run once per test session (shared by read-only tests)."""
    from rttui import api

    d = tmp_path_factory.mktemp("tinydb")
    study_file = d / "tiny.toml"
    study_file.write_text(TINY_STUDY)
    db = d / "tiny.db"
    api.run_study(api.load_study(study_file), db)
    return db
