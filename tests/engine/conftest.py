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
    # Trained at a fixed thread count: float sums follow it, so the same weights come out on every machine (the
    # audit's verdicts on this model were seen to differ between a 1- and a 2-thread training).
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fit(m, task.train, {"epochs": 4, "lr": 3e-3, "batch_size": 32}, 0)
    finally:
        torch.set_num_threads(threads)
    m.eval()
    return m, task.test.x, task.test.y
