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
    the retried job resumes from that epoch's checkpoint, and the database ends as the in-process run's. The
    driver never loads a pickle a job wrote (submitit's result files): events and outcomes come as JSON lines."""
    import submitit.core.utils

    def no_unpickling(*a: Any, **k: Any) -> Any:
        raise AssertionError("the driver unpickled a file a job wrote")

    monkeypatch.setattr(submitit.core.utils, "pickle_load", no_unpickling)
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
    before the database is created or any unit is submitted; the folders the probe needed are gone again."""
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
    assert not db.exists() and not (tmp_path / "slurm.artifacts").exists()
    assert list(elsewhere.glob("*.job"))  # the job did run, and wrote where it was told


def test_slurm_options_do_not_split_run_ids_and_study_validates_without_submitit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)
    study = parse_study(tiny_study(run={"executor": "slurm", "slurm": {"partition": "gpu"}}))
    assert study.run["slurm"]["partition"] == "gpu"


# ---- events through files: JSON lines, nothing unpickled (issue #28 item 5) ---------------------------------
def test_slurm_events_are_json_lines_read_back_as_events_and_never_unpickled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a job writes is one JSON object per line; the driver builds only rttui's event dataclasses from it
    (NaN and nested records survive), leaves a torn last line for the next read, keeps the closing Outcome apart,
    and refuses in one line a line it did not write (a pickle, which it would once have loaded) without loading
    it."""
    import pickle

    from rttui.runner.jobs import Outcome
    from rttui.runner.slurm_executor import EventReader, EventWriter

    def no_unpickling(*a: Any, **k: Any) -> Any:
        raise AssertionError("the driver unpickled an event file")

    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    path = tmp_path / "u.events"
    w = EventWriter(path)
    sent = [
        ev.UnitStarted("run", "r1", "test_resnet/full", "train", 7),
        ev.EpochDone("run", "r1", {"epoch": 1, "loss": float("nan"), "val": {"acc": [0.5, 0.25]}}),
    ]
    for e in sent:
        w.put(e)
    w.put(Outcome(False, "boom", "trace", oom=True))
    w.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3 and all(json.loads(ln)["type"] for ln in lines)
    r = EventReader(path)
    got = r.read()
    assert [type(e) for e in got] == [ev.UnitStarted, ev.EpochDone] and got[0] == sent[0]
    assert got[1].record["val"] == {"acc": [0.5, 0.25]} and got[1].record["loss"] != got[1].record["loss"]  # NaN
    assert r.outcome == Outcome(False, "boom", "trace", oom=True)
    with open(path, "ab") as f:  # a job dying mid-line: the torn line waits
        f.write(b'{"type": "Progress", "data": {"kind": "run"')
    assert r.read() == []
    with open(path, "ab") as f:
        f.write(b', "unit_id": "r1", "phase": "train", "done": 1, "total": 2}}\n')
    assert r.read() == [ev.Progress("run", "r1", "train", 1, 2)]
    with open(path, "ab") as f:  # what the old format was: a pickle (here one that would run code if loaded)
        f.write(pickle.dumps(os.system) + b"\n")
    with pytest.raises(RttuiError) as e:
        r.read()
    assert "a SLURM job's event file holds a line rttui did not write" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError):
        ev.from_json('{"type": "Popen", "data": {"args": ["sh"]}}')  # only rttui's own dataclasses are built


def _fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refuse: str = "", srun: bool = True) -> Path:
    """`sbatch` (and `srun`) on PATH: `--test-only` answers like SLURM (or refuses with `refuse`), a submission
    copies the script it was given into <tmp>/submitted/ and says `Submitted batch job N`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sub = tmp_path / "submitted"
    sub.mkdir()
    test_only = f'echo "sbatch: error: {refuse}" >&2; exit 1' if refuse else 'echo "sbatch: Job 1 to start" >&2; exit 0'
    (bin_dir / "sbatch").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--test-only" ]; then {test_only}; fi\n'
        f'n=$(ls {sub} | wc -l); cp "$1" {sub}/$n.sh; echo "Submitted batch job $((4200 + n))"\n'
    )
    names = ["sbatch", "srun"] if srun else ["sbatch"]
    for name in names[1:]:
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
    for name in names:
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return sub


def test_slurm_dry_run_prints_the_script_submitit_submits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rttui run --executor slurm --dry-run` prints, byte for byte, the script submitit hands sbatch for one job
    (the probe job and every single unit), with the study's and the command line's options; the array variant is
    submitit's too. It runs without sbatch, and writes nothing."""
    from tests.entry import run_cli

    f = tmp_path / "small.toml"
    f.write_text(SMALL + RUN_TABLE)
    db = tmp_path / "d" / "x.db"
    db.parent.mkdir()
    monkeypatch.setenv("PATH", "/nonexistent")  # no sbatch, no srun: a laptop
    code, out, err = run_cli(["run", str(f), "--db", str(db), "--slurm", "time=30", "--dry-run"], monkeypatch, capsys)
    assert code == 0, err
    assert out.startswith("#!/bin/bash") and "#SBATCH --time=30\n" in out and "#SBATCH --qos=normal\n" in out
    assert "dry run of small with --executor slurm" in err and "nothing was run, submitted or written" in err
    assert list(db.parent.iterdir()) == []
    monkeypatch.undo()
    # What submitit really writes for sbatch, through the executor a run uses (a fake sbatch keeps the script).
    from rttui.runner.slurm_executor import SlurmExecutor

    sub = _fake_slurm(tmp_path, monkeypatch)
    runner = SlurmExecutor(slurm_options(parse_study(SMALL + RUN_TABLE), ["time=30"]), tmp_path / "d" / "x.artifacts")
    ex = runner._executor()
    ex.submit(print, "one")
    with ex.batch():
        ex.submit(print, "a")
        ex.submit(print, "b")
    single, array = (sub / "0.sh").read_text(), (sub / "1.sh").read_text()
    assert single == out
    assert array == runner.script(units=2) and "#SBATCH --array=0-1%2\n" in array


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no-submitit", "needs submitit, which is not installed"),
        ("no-sbatch", "sbatch is not on this machine's PATH"),
        ("no-srun", "srun is not on this machine's PATH"),
        ("bad-option", "sbatch refuses the job script (sbatch: error: invalid partition specified: nope)"),
        ("no-ray", "--executor ray needs Ray, which is not installed"),
    ],
)
def test_executor_refusals_come_before_the_data_the_plan_the_lock_and_any_write(
    setup: str,
    message: str,
    tmp_path: Path,
    tiny_run_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue #28: `--executor ray` without Ray registered the study and its runs before saying so, and SLURM's
    refusals came after the data was loaded (67-106 s), leaving an empty database and an artifacts folder. Now
    each is one line, exit 2, before the data is loaded: a new --db is not created (nor its artifacts folder),
    an existing one stays byte for byte as it was."""
    import shutil

    from rttui.api import runs
    from tests.entry import run_cli

    def no_data(study: Any) -> None:
        raise AssertionError("the data was loaded before the refusal")

    monkeypatch.setattr(runs, "check_data", no_data)
    f = tmp_path / "small.toml"
    f.write_text(SMALL)
    args = ["--executor", "ray"] if setup == "no-ray" else ["--executor", "slurm"]
    if setup == "no-ray":
        monkeypatch.setitem(sys.modules, "ray", None)
    elif setup == "no-submitit":
        monkeypatch.setitem(sys.modules, "submitit", None)
    elif setup == "no-sbatch":
        monkeypatch.setenv("PATH", "/nonexistent")
    else:
        _fake_slurm(tmp_path, monkeypatch, refuse="invalid partition specified: nope", srun=setup != "no-srun")
        args += ["--slurm", "partition=nope"]
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(tiny_run_db, old / "q.db")
    before = (old / "q.db").read_bytes()
    for db in (tmp_path / "new" / "q.db", old / "q.db"):
        db.parent.mkdir(exist_ok=True)
        code, _, err = run_cli(["run", str(f), "--db", str(db), "-q", *args], monkeypatch, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert list((tmp_path / "new").iterdir()) == []
    assert (old / "q.db").read_bytes() == before
    # Only SQLite's reader files beside it (a reader of a WAL database makes them), the WAL empty: nothing written.
    assert {p.name for p in old.iterdir()} <= {"q.db", "q.db-wal", "q.db-shm"}
    assert not (old / "q.db-wal").exists() or (old / "q.db-wal").stat().st_size == 0
