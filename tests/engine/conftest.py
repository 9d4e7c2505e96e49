"""A small digits classifier shared by the engine's attack tests (trained once per session)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def trained():
    """test_resnet on digits 5-9 at 16x16, trained enough to be mostly right (clean): (model, x_test, y_test)."""
    from rttui.engine.data import load_task
    from rttui.engine.models import create_model
    from rttui.engine.train import fit

    torch.manual_seed(0)
    task = load_task({"dataset": "digits", "classes": [5, 6, 7, 8, 9], "test_size": 100, "split_seed": 0}, 16)
    m = create_model({"name": "test_resnet"}, 5, 16)
    fit(m, task.train, {"epochs": 4, "lr": 3e-3, "batch_size": 32}, 0)
    m.eval()
    return m, task.test.x, task.test.y
