"""GPU telemetry for a monitor: per NVIDIA device its utilisation and memory, and how much of it the runner's
processes hold, read through NVML (nvidia-ml-py's `pynvml`, an optional dependency). Reads only; never
initialises CUDA or imports torch, so polling it every second costs a few NVML calls. On a machine without
NVIDIA GPUs (or without nvidia-ml-py) it says so in one line instead of failing. `match_workers` names on each
device the units the runner's workers on it are working on (the store's `workers` rows)."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

_nvml: ModuleType | None = None
_failed = ""


def load_nvml() -> ModuleType:
    """pynvml, initialised once per process; raises RuntimeError with a one-line reason when unusable."""
    global _nvml, _failed
    if _nvml is not None:
        return _nvml
    if _failed:
        raise RuntimeError(_failed)
    try:
        import pynvml
    except ImportError:
        _failed = "no NVIDIA GPU telemetry: nvidia-ml-py is not installed (pip install 'rttui[gpu]')"
        raise RuntimeError(_failed) from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        _failed = f"no NVIDIA GPU ({exc})"
        raise RuntimeError(_failed) from None
    _nvml = pynvml
    return pynvml


def process_tree(pid: int | None) -> set[int]:
    """`pid` and its descendants (a runner's workers), from /proc; just {pid} where /proc cannot tell."""
    if not pid:
        return set()
    found, todo = {pid}, [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                kids = [int(k) for k in task.read_text().split()]
            except (OSError, ValueError):
                continue
            for k in kids:
                if k not in found:
                    found.add(k)
                    todo.append(k)
    return found


def gpu_telemetry(runner_pid: int | None = None, nvml: ModuleType | None = None) -> dict[str, Any]:
    """{"available": bool, "note": one line when not, "devices": [{"index", "name", "util" (%), "mem_used",
    "mem_total" (bytes), "runner_mem" (bytes the runner's processes hold on it, None when NVML cannot tell),
    "runner_pids"}]}. `runner_pid` is the runner on this host (its children count too); `nvml` replaces pynvml
    (tests pass a fake)."""
    try:
        lib = nvml or load_nvml()
    except RuntimeError as exc:
        return {"available": False, "note": str(exc), "devices": []}
    mine = process_tree(runner_pid)
    devices = []
    try:
        for i in range(lib.nvmlDeviceGetCount()):
            h = lib.nvmlDeviceGetHandleByIndex(i)
            name = lib.nvmlDeviceGetName(h)
            mem = lib.nvmlDeviceGetMemoryInfo(h)
            try:
                util: int | None = int(lib.nvmlDeviceGetUtilizationRates(h).gpu)
            except lib.NVMLError:
                util = None
            try:
                procs = lib.nvmlDeviceGetComputeRunningProcesses(h)
                held = [p for p in procs if p.pid in mine]
                used = [p.usedGpuMemory for p in held if p.usedGpuMemory is not None]
                runner_mem: int | None = sum(used) if held else 0
                pids = sorted(p.pid for p in held)
            except lib.NVMLError:
                runner_mem, pids = None, []
            devices.append(
                {
                    "index": i,
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "util": util,
                    "mem_used": int(mem.used),
                    "mem_total": int(mem.total),
                    "runner_mem": runner_mem,
                    "runner_pids": pids,
                }
            )
    except lib.NVMLError as exc:
        return {"available": False, "note": f"NVIDIA GPU telemetry failed: {exc}", "devices": []}
    if not devices:
        return {"available": False, "note": "no NVIDIA GPU (NVML sees no device)", "devices": []}
    return {"available": True, "note": "", "devices": devices, "host_pid": os.getpid()}


def cuda_index(device: str | None) -> int | None:
    """The GPU index a torch device string names (`cuda` alone is 0); None for a CPU or anything else."""
    if not device or not device.startswith("cuda"):
        return None
    _, _, idx = device.partition(":")
    return int(idx) if idx.isdigit() else 0


def match_workers(tel: dict[str, Any], workers: list[dict[str, Any]], host: str | None = None) -> dict[str, Any]:
    """`tel` with `units` ([{"kind", "id", "worker"}]) on each device row: what the runner's workers on that device
    work on now. A worker is on the device where NVML lists its process (`runner_pids`); a worker whose process NVML
    lists on no device (it cannot tell, or a container hides the PIDs) is on the device it was given (`cuda:K`, K as
    NVML counts GPUs: true with one GPU or with CUDA_DEVICE_ORDER=PCI_BUS_ID). Only workers on this host (`host`,
    default this machine's name) that work on a unit count."""
    import socket

    here = host or socket.gethostname()
    busy = [w for w in workers if w.get("unit_id") and w.get("host") == here]
    devices = tel.get("devices", [])
    seen = {p for d in devices for p in d.get("runner_pids") or []}
    for d in devices:
        pids = set(d.get("runner_pids") or [])
        on = [
            w
            for w in busy
            if w.get("pid") in pids or (w.get("pid") not in seen and cuda_index(w.get("device")) == d["index"])
        ]
        d["units"] = [{"kind": w["kind"], "id": w["unit_id"], "worker": w["slot"]} for w in on]
    return tel
