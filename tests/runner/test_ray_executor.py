"""The Ray executor on a local Ray instance: same stored results as the local executor with the same seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rttui import api
from rttui.runner import events as ev
from tests.runner.test_faults import SMALL, _check_consistent, _results

pytest.importorskip("ray", reason="ray is not installed (pip install 'rttui[ray]'); CI installs it")


def test_ray_executor_matches_local_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    study = tmp_path / "small.toml"
    study.write_text(SMALL)
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # Ray tasks get one CPU each, so one torch thread: the same arithmetic
    try:
        api.run_study(api.load_study(study), tmp_path / "local.db")
    finally:
        torch.set_num_threads(n)
    seen: list[ev.Event] = []
    res = api.run_study(api.load_study(study), tmp_path / "ray.db", seen.append, executor="ray", workers=2)
    assert res == {"done": 2, "failed": 0, "runs": 2, "cancelled": False}
    # Events came back from the Ray tasks to this driver, which alone wrote the database.
    assert sum(isinstance(e, ev.EvalDone) for e in seen) == 2
    assert sum(isinstance(e, ev.EpochDone) for e in seen) == 2 + 2 * 2
    _check_consistent(tmp_path / "ray.db")
    assert _results(tmp_path / "ray.db") == _results(tmp_path / "local.db")
