"""GPU telemetry through a fake NVML layer (no GPU here): per device utilisation and memory, what the runner's
processes hold, and one line when there is no NVIDIA GPU."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from rttui.runner import gpus
from rttui.tui.cells import gpu_lines

GIB = 2**30


class FakeNVML:
    """The few pynvml calls gpus.py makes, over made-up devices."""

    class NVMLError(Exception):
        pass

    def __init__(self, devices: list[dict]) -> None:
        self.devices = devices

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> dict:
        return self.devices[i]

    def nvmlDeviceGetName(self, h: dict) -> bytes:
        return h["name"].encode()

    def nvmlDeviceGetMemoryInfo(self, h: dict) -> SimpleNamespace:
        return SimpleNamespace(used=h["used"], total=h["total"], free=h["total"] - h["used"])

    def nvmlDeviceGetUtilizationRates(self, h: dict) -> SimpleNamespace:
        return SimpleNamespace(gpu=h["util"], memory=0)

    def nvmlDeviceGetComputeRunningProcesses(self, h: dict) -> list[SimpleNamespace]:
        if h.get("procs") is None:
            raise self.NVMLError("not supported")
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in h["procs"]]


def test_devices_and_the_runners_own_memory() -> None:
    me = os.getpid()
    fake = FakeNVML(
        [
            {
                "name": "NVIDIA H200",
                "used": 40 * GIB,
                "total": 140 * GIB,
                "util": 87,
                "procs": [(me, 38 * GIB), (1, GIB)],
            },
            {"name": "NVIDIA H200", "used": GIB, "total": 140 * GIB, "util": 0, "procs": [(1, GIB)]},
            {"name": "NVIDIA H200", "used": 0, "total": 140 * GIB, "util": 3, "procs": None},
        ]
    )
    tel = gpus.gpu_telemetry(me, nvml=fake)  # type: ignore[arg-type]
    assert tel["available"]
    d0, d1, d2 = tel["devices"]
    assert (d0["util"], d0["mem_used"], d0["mem_total"], d0["runner_mem"], d0["runner_pids"]) == (
        87,
        40 * GIB,
        140 * GIB,
        38 * GIB,
        [me],
    )  # another user's process (pid 1) does not count as the runner's
    assert d1["runner_mem"] == 0 and d1["runner_pids"] == []
    assert d2["runner_mem"] is None  # NVML could not list processes: unknown, not 0
    lines = gpu_lines({**tel, "runner_here": True})
    assert lines[0] == f"GPU0 NVIDIA H200 · busy 87% · memory 40.0/140.0 GiB · runner 38.0 GiB (process {me})"
    assert "not on this GPU" in lines[1] and "unknown" in lines[2]


def test_no_nvidia_gpu_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpus, "_nvml", None)
    monkeypatch.setattr(gpus, "_failed", "")
    import pynvml

    def no_library() -> None:
        raise pynvml.NVMLError_LibraryNotFound()

    monkeypatch.setattr(pynvml, "nvmlInit", no_library)
    tel = gpus.gpu_telemetry(os.getpid())
    assert not tel["available"] and tel["devices"] == []
    (line,) = gpu_lines(tel)
    assert line.startswith("no NVIDIA GPU")


def test_the_runners_children_count_as_the_runner() -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert {os.getpid(), child.pid} <= gpus.process_tree(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_peak_gpu_memory_is_measured_on_cuda_and_stored_per_unit(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CUDA device the unit's peak is PyTorch's max_memory_allocated since the reset at its start; on a
    CPU there is nothing to measure (None). The runs and sources tables keep it beside the unit."""
    import torch

    from rttui.runner.tasks import peak_gpu_mem, reset_peak_gpu_mem
    from rttui.store import Store

    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda dev: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda dev: calls.append("peak") or 3 * GIB)
    cuda, cpu = SimpleNamespace(type="cuda"), SimpleNamespace(type="cpu")
    reset_peak_gpu_mem(cuda)
    assert peak_gpu_mem(cuda) == 3 * GIB and calls == ["reset", "peak"]
    reset_peak_gpu_mem(cpu)
    assert peak_gpu_mem(cpu) is None and calls == ["reset", "peak"]

    with Store.open(tmp_path / "x.db", write=True) as s:
        s.ensure_source("src", {"seed": 0, "model": {"name": "m"}, "data": {"dataset": "digits"}})
        s.update_unit("source", "src", state="done", peak_gpu_mem=3 * GIB)
        assert s.unit("source", "src")["peak_gpu_mem"] == 3 * GIB


def test_one_record_of_peak_gpu_memory_the_units_whole_peak_read_by_status_export_and_monitor(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a fake CUDA peak (each reading higher than the last, as a job's peak only grows): a source's column
    holds its peak at its end, a run's the whole job's (training, then evaluation) at its end, no unit's info
    holds a second record, and status, `status --run`, the export and the Monitor's data read the column."""
    import json

    from typer.testing import CliRunner

    from rttui import api
    from rttui.cli import app as cli
    from rttui.runner import tasks
    from tests.studies import tiny_study

    readings = iter(range(1, 100))
    monkeypatch.setattr(tasks, "peak_gpu_mem", lambda dev: next(readings) * GIB)
    f = tmp_path / "tiny.toml"
    f.write_text(tiny_study(grid=[{"models": ["test_resnet"], "strategies": ["full"]}]))
    db = tmp_path / "t.db"
    api.run_study(api.load_study(f), db)
    from rttui.store import Store

    with Store.open(db) as s:
        (src,) = s.rows("select peak_gpu_mem, info from sources")
        (run,) = s.rows("select id, peak_gpu_mem, info from runs")
    assert src["peak_gpu_mem"] == 1 * GIB  # the source's one reading, at its end
    assert run["peak_gpu_mem"] == 3 * GIB  # 2 GiB when trained, 3 GiB at the end of its evaluations
    for unit in (src, run):
        assert "peak_gpu_mem_mb" not in json.loads(unit["info"])
    st = api.status(db)
    assert [r["peak_gpu_mem"] for r in st["runs"]] == [3 * GIB]
    assert {r["peak_gpu_mem"] for r in api.export_records(db)} == {3 * GIB}
    assert [r["peak_gpu_mem"] for r in api.study_progress(db, "tiny")["runs"]] == [3 * GIB]
    res = CliRunner().invoke(cli, ["status", "--db", str(db)], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "GPU peak" in res.output and "3.0 GiB" in res.output, res.output
    res = CliRunner().invoke(cli, ["status", "--db", str(db), "--run", run["id"]], env={"COLUMNS": "200"})
    assert "peak GPU memory: 3.0 GiB (training and evaluation)" in res.output, res.output


def test_a_later_job_never_lowers_a_units_peak_and_old_info_keys_still_read(tmp_path) -> None:
    """An evaluation-only job that peaks lower keeps the unit's higher peak; a database whose info still holds the
    old `peak_gpu_mem_mb` key reads as before (the key is ignored, the column is the record)."""
    from rttui import api
    from rttui.runner import events as ev
    from rttui.runner.coordinator import Coordinator
    from rttui.store import Store

    with Store.open(tmp_path / "x.db", write=True) as s:
        cfg = {"source_id": "src", "target": {"dataset": "d"}, "model": {"name": "m"}, "seed": 0}
        s.ensure_run("r", {**cfg, "strategy": {"name": "full"}, "technique": {"name": "none"}})
        s.register_study("st", None, {}, ["r"])
        s.merge_info("run", "r", {"peak_gpu_mem_mb": 512.0})  # what an older runner wrote
        c = Coordinator(s, None)  # type: ignore[arg-type]  # emit needs no plan
        c.emit(ev.UnitStarted("run", "r", "r"))
        c.emit(ev.UnitFinished("run", "r", 1.0, peak_gpu_mem=5 * GIB))
        assert s.unit("run", "r")["peak_gpu_mem"] == 5 * GIB
        c.emit(ev.UnitStarted("run", "r", "r", phase="eval"))
        c.emit(ev.UnitFinished("run", "r", 1.0, peak_gpu_mem=2 * GIB))
        assert s.unit("run", "r")["peak_gpu_mem"] == 5 * GIB
    assert [r["peak_gpu_mem"] for r in api.status(tmp_path / "x.db")["runs"]] == [5 * GIB]


def test_each_device_names_the_unit_its_worker_works_on() -> None:
    """By process where NVML lists the runner's processes on a device; by the worker's device where it lists
    none (it cannot tell, or a container hides the PIDs); a worker between units, or on another host, names
    nothing."""
    import socket

    host = socket.gethostname()
    fake = FakeNVML(
        [
            {"name": "NVIDIA H200", "used": 9 * GIB, "total": 140 * GIB, "util": 90, "procs": [(4001, 8 * GIB)]},
            {"name": "NVIDIA H200", "used": 7 * GIB, "total": 140 * GIB, "util": 80, "procs": None},
            {"name": "NVIDIA H200", "used": 0, "total": 140 * GIB, "util": 0, "procs": []},
        ]
    )
    workers = [
        {"slot": 0, "pid": 4001, "host": host, "device": "cuda:2", "kind": "run", "unit_id": "run-a"},
        {"slot": 1, "pid": 4002, "host": host, "device": "cuda:1", "kind": "source", "unit_id": "src-b"},
        {"slot": 2, "pid": 4003, "host": host, "device": "cuda:2", "kind": None, "unit_id": None},  # between units
        {"slot": 3, "pid": 4004, "host": "elsewhere", "device": "cuda:2", "kind": "run", "unit_id": "run-c"},
    ]
    tel = gpus.gpu_telemetry(4001, nvml=fake)  # type: ignore[arg-type]
    gpus.match_workers(tel, workers)
    d0, d1, d2 = tel["devices"]
    # NVML sees worker 0's process on GPU0 (its device string says cuda:2: where the process is counts)
    assert d0["units"] == [{"kind": "run", "id": "run-a", "worker": 0}]
    assert d1["units"] == [{"kind": "source", "id": "src-b", "worker": 1}]  # no process list: by device
    assert d2["units"] == []  # worker 0's device string says cuda:2, but NVML saw its process on GPU0
    lines = gpu_lines({**tel, "runner_here": True}, {"run-a": "full/s0", "src-b": "source test_resnet/s0"})
    assert lines[0].startswith("GPU0 NVIDIA H200 · full/s0 · busy 90%")
    assert lines[1].startswith("GPU1 NVIDIA H200 · source test_resnet/s0 · busy 80%")
    assert lines[2].startswith("GPU2 NVIDIA H200 · busy 0%")
    assert gpus.cuda_index("cuda") == 0 and gpus.cuda_index("cuda:3") == 3 and gpus.cuda_index("cpu") is None


def test_the_runner_keeps_each_workers_unit_in_the_store_while_it_runs(tmp_path) -> None:
    """In process: one worker (this process, its device); the unit it works on at each start, nothing between
    units, and no worker once the study has finished."""
    from rttui import api
    from rttui.runner import events as ev
    from rttui.store import Store
    from tests.studies import tiny_study

    f = tmp_path / "tiny.toml"
    f.write_text(tiny_study(grid=[{"models": ["test_resnet"], "strategies": ["full"]}]))
    db = tmp_path / "t.db"
    seen: list[tuple[str, str, list]] = []

    def listener(event: ev.Event) -> None:
        if isinstance(event, ev.UnitStarted | ev.UnitTrained | ev.UnitFinished | ev.StudyFinished):
            with Store.open(db) as ro:
                seen.append((type(event).__name__, getattr(event, "unit_id", ""), ro.workers()))

    api.run_study(api.load_study(f), db, listener)
    starts = [(uid, w) for name, uid, w in seen if name == "UnitStarted"]
    assert len(starts) == 2  # the source, then the run
    for uid, workers in starts:
        (w,) = workers
        assert (w["slot"], w["pid"], w["device"], w["unit_id"]) == (0, os.getpid(), "cpu", uid)
    (src, _), (run, _) = starts
    after = {(name, uid): w for name, uid, w in seen}
    assert after[("UnitTrained", src)][0]["unit_id"] is None  # a source's work ends when it is trained
    assert after[("UnitTrained", run)][0]["unit_id"] == run  # a run goes on to its evaluations
    assert after[("UnitFinished", run)][0]["unit_id"] is None
    assert seen[-1][0] == "StudyFinished" and seen[-1][2] == []
