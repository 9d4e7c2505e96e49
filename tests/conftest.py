"""Shared fixtures: a tiny offline study that runs in seconds on a CPU."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.studies import TRANSFER_STUDY, tiny_study

os.environ.setdefault("OMP_NUM_THREADS", "2")

# A suite started as a background job (`pytest &` from a script) inherits SIGINT ignored, and every process a test
# starts would keep ignoring it: the tests that press Ctrl-C on a runner, or cancel a SLURM job (submitit's local
# cluster does it with SIGINT), need it delivered as it is in a terminal. A handler (not SIG_IGN) here means the
# processes the tests start get the default disposition back when they exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

TINY_STUDY = tiny_study()


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


@pytest.fixture(scope="session")
def transfer_run_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The transfer study run once per session (in process: the sibling surrogates point at each other)."""
    from rttui import api

    d = tmp_path_factory.mktemp("transfer")
    f = d / "tr.toml"
    f.write_text(TRANSFER_STUDY)
    db = d / "tr.db"
    res = api.run_study(api.load_study(f), db)
    assert res["failed"] == 0 and res["done"] == 4, res
    return db
