"""The SLURM executor through submitit: job options from the study and the command line (checked like the study,
turned into #SBATCH lines), and end to end with submitit's local executor (real processes, the same code path
except sbatch): the same stored results as the in-process executor, events back to the single writer, a killed
job retried and resumed, cancel and resume, and a folder the jobs cannot share refused before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from rttui import api
from rttui.errors import RttuiError, StudyError
from rttui.runner import events as ev
from rttui.study.spec import parse_study, slurm_options
from tests.runner.test_faults import SMALL, _check_consistent, _results
from tests.studies import tiny_study

submitit = pytest.importorskip("submitit", reason="submitit is in the test extra (rttui[slurm])")

LOCAL = ["cluster=local", "probe_timeout=300"]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch):
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the jobs run with cpus_per_task = 1 thread: the same arithmetic here
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("RTTUI_FAULTS", raising=False)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def local_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small study run in-process with one torch thread: what every SLURM run must store."""
    d = tmp_path_factory.mktemp("slurm-ref")
    (d / "small.toml").write_text(SMALL)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        api.run_study(api.load_study(d / "small.toml"), d / "local.db")
    finally:
        torch.set_num_threads(n)
    return d / "local.db"


def _study(tmp_path: Path, text: str = SMALL) -> Any:
    f = tmp_path / "small.toml"
    f.write_text(text)
    return api.load_study(f)


# ---- options -----------------------------------------------------------------------------------------------
RUN_TABLE = """
[run]
executor = "slurm"

[run.slurm]
partition = "gpu"
time = "02:00:00"
gpus_per_task = 1
cpus_per_task = 8
mem_gb = 32
account = "robust-ml"
sbatch = { qos = "normal", constraint = "a100" }
setup = ["module load cuda/12.4"]
"""


def test_slurm_options_from_the_study_and_the_command_line_become_sbatch_lines(tmp_path: Path) -> None:
    from submitit.slurm.slurm import _make_sbatch_string

    from rttui.runner.slurm_executor import SlurmExecutor

    study = parse_study(SMALL + RUN_TABLE)
    assert study.run["executor"] == "slurm"
    opts = slurm_options(study, ["time=30", "sbatch.qos=high", "partition=a100-long"])
    assert opts["time"] == 30 and opts["gpus_per_task"] == 1 and opts["sbatch"] == {"qos": "high", "constraint": "a100"}
    text = _make_sbatch_string(
        command="python -m x", folder=str(tmp_path), **SlurmExecutor(opts, tmp_path).parameters()
    )
    for line in (
        "#SBATCH --partition=a100-long",
        "#SBATCH --time=30",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32768M",
        "#SBATCH --account=robust-ml",
        "#SBATCH --qos=high",
        "#SBATCH --constraint=a100",
        "module load cuda/12.4",
    ):
        assert line in text, line
    # Execution options are not part of any run's config: the same run ids with or without [run].
    assert [r.id for r in api.make_plan(study).runs] == [r.id for r in api.make_plan(parse_study(SMALL)).runs]


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("", ["gpus_per_task=two"], "--slurm: slurm.gpus_per_task: expected int, got 'two'"),
        ("", ["partiton=gpu"], "slurm.partiton: unknown key; did you mean 'partition'?"),
        ("", ["time=soon"], "slurm.time: 'soon' is not a time limit"),
        ("", ["gpu"], "--slurm: gpu: expected KEY=VALUE"),
        ("[run.slurm]\ntime = true\n", [], "run.slurm.time: expected int or str, got True"),
        ("[run]\nexecutor = 'slurrm'\n", [], "run.executor: unknown value 'slurrm'; did you mean 'slurm'?"),
    ],
)
def test_slurm_bad_option_is_one_line(text: str, overrides: list[str], message: str) -> None:
    with pytest.raises(StudyError) as e:
        slurm_options(parse_study(SMALL + text), overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


def _rttui(*args: str, hide: str = "") -> subprocess.CompletedProcess:
    pre = f"import sys; sys.modules[{hide!r}] = None\n" if hide else ""
    code = f"{pre}import sys; sys.argv = ['rttui', *sys.argv[1:]]\nfrom rttui.cli import main\nmain()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_slurm_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    f = tmp_path / "small.toml"
    f.write_text(SMALL)
    db = str(tmp_path / "x.db")
    cases = [
        (["--executor", "slurrm"], "", "--executor 'slurrm' is not known; use local, ray or slurm"),
        (["--executor", "slurm", "--slurm", "gpus_per_task=2.5"], "", "slurm.gpus_per_task: expected int, got 2.5"),
        (["--executor", "slurm"], "submitit", "needs submitit, which is not installed; pip install 'rttui[slurm]'"),
        (["--executor", "slurm"], "", "sbatch is not on this machine's PATH"),
    ]
    for args, hide, message in cases:
        r = _rttui("run", str(f), "--db", db, *args, hide=hide)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], (args, r.stderr)
    assert not list((tmp_path / "x.artifacts").glob("**/*.events"))


# ---- end to end with submitit's local executor -------------------------------------------------------------
@pytest.mark.slow
def test_slurm_local_executor_stores_what_the_local_executor_stores(
    tmp_path: Path, local_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every unit a job; the full run's first job is killed (SIGKILL) after epoch 1: the driver sees a crash,
    the retried job resumes from that epoch's checkpoint, and the database ends as the in-process run's."""
    monkeypatch.setenv("RTTUI_FAULTS", json.dumps([{"unit": "/full/", "kill_after_epoch": 1}]))
    seen: list[ev.Event] = []
    db = tmp_path / "slurm.db"
    res = api.run_study(_study(tmp_path), db, seen.append, executor="slurm", slurm=LOCAL)
    assert res == {"done": 2, "failed": 0, "runs": 2, "cancelled": False}
    retried = [e for e in seen if isinstance(e, ev.UnitRetried)]
    assert len(retried) == 1 and "SLURM job" in retried[0].reason and "died" in retried[0].reason
    resumed = [e for e in seen if isinstance(e, ev.TrainingStarted) and e.unit_id == retried[0].unit_id]
    assert [e.from_epoch for e in resumed] == [0, 1]
    # Events came back from the jobs to this driver, which alone wrote the database.
    assert sum(isinstance(e, ev.EvalDone) for e in seen) == 2
    assert {e.worker for e in seen if isinstance(e, ev.UnitStarted)} - {0, os.getpid()}
    _check_consistent(db)
    assert _results(db) == _results(local_db)
    art = tmp_path / "slurm.artifacts" / "slurm"
    assert not list((art / "events").iterdir()) and not list((art / "probe").iterdir())


@pytest.mark.slow
def test_slurm_cancel_and_resume(tmp_path: Path, local_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel while the source's job sleeps after epoch 1 cancels the job and leaves the unit pending; the
    next run resumes it from that epoch and the database ends as the in-process run's."""
    from rttui.runner import slurm_executor

    handles: list[Any] = []
    submit = slurm_executor.SlurmExecutor._submit

    def recording(self: Any, ex: Any, jobs: Any, events_dir: Path, threads: int) -> None:
        submit(self, ex, jobs, events_dir, threads)
        handles.extend(r.handle for r in self.running.values())

    monkeypatch.setattr(slurm_executor.SlurmExecutor, "_submit", recording)
    monkeypatch.setenv("RTTUI_FAULTS", json.dumps([{"unit": "source", "sleep_after_epoch": 1, "seconds": 120}]))
    stop = threading.Event()
    seen: list[ev.Event] = []

    def listen(e: ev.Event) -> None:
        seen.append(e)
        if isinstance(e, ev.EpochDone) and e.kind == "source":
            stop.set()

    db = tmp_path / "slurm.db"
    res = api.run_study(_study(tmp_path), db, listen, executor="slurm", slurm=LOCAL, stop=stop)
    assert res["cancelled"] and res["done"] == 0
    assert handles and all(h.done() for h in handles)  # the cancelled job's process is gone
    with api.open_store(db) as s:
        assert {r["state"] for r in s.rows("select state from sources")} == {"pending"}
        assert s.runner_lock() is None
    monkeypatch.delenv("RTTUI_FAULTS")
    seen.clear()
    res = api.run_study(_study(tmp_path), db, seen.append, executor="slurm", slurm=LOCAL)
    assert res == {"done": 2, "failed": 0, "runs": 2, "cancelled": False}
    src = [e for e in seen if isinstance(e, ev.TrainingStarted) and e.kind == "source"]
    assert [e.from_epoch for e in src] == [1]  # resumed from the epoch the cancelled job had saved
    _check_consistent(db)
    assert _results(db) == _results(local_db)


def test_slurm_refuses_a_folder_the_jobs_do_not_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe job is pointed at another folder (a node that mounts another filesystem at that path): one line,
    before the plan is registered or any unit is submitted."""
    from rttui.runner import slurm_executor

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setattr(slurm_executor, "probe_target", lambda folder: str(elsewhere))
    monkeypatch.setattr(slurm_executor, "PROBE_FILE_S", 1.0)
    db = tmp_path / "slurm.db"
    with pytest.raises(RttuiError) as e:
        api.run_study(_study(tmp_path), db, executor="slurm", slurm=LOCAL)
    msg = str(e.value)
    assert "is not shared with the SLURM nodes" in msg and "--db /shared/" in msg and "\n" not in msg
    with api.open_store(db) as s:
        assert s.rows("select id from runs") == [] and s.runner_lock() is None
    assert list(elsewhere.glob("*.job"))  # the job did run, and wrote where it was told


def test_slurm_options_do_not_split_run_ids_and_study_validates_without_submitit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)
    study = parse_study(tiny_study(run={"executor": "slurm", "slurm": {"partition": "gpu"}}))
    assert study.run["slurm"]["partition"] == "gpu"
