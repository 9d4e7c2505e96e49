"""Which executor runs a study: in this process, a pool of worker processes, or Ray tasks.

In-process is fastest for small CPU studies (no worker start-up); with several GPUs (or `workers` / `devices`
asking for more than one worker) a pool runs one worker process per device; `executor="ray"` runs each unit as
a Ray task; `executor="slurm"` runs each unit as a SLURM job through submitit (slurm_executor.py). torch is
imported only when the choice needs it (to count GPUs). Never import a face here.
"""

from __future__ import annotations

import os
from typing import Any

from rttui.errors import RttuiError

EXECUTORS = ("local", "ray", "slurm")


def check_options(
    executor: str,
    workers: int | None,
    *,
    device: str | None = None,
    devices: list[str] | None = None,
    max_retries: int = 1,
) -> None:
    """Refuse an unknown executor, a worker count below one, a negative retry count or a device torch cannot
    use here, before anything is loaded or written."""
    if executor not in EXECUTORS:
        raise RttuiError(f"--executor {executor!r} is not known; use local, ray or slurm")
    if workers is not None and workers < 1:
        raise RttuiError(f"--workers {workers} must be at least 1")
    if max_retries < 0:
        raise RttuiError(f"--retries {max_retries} must be 0 or more (0: a unit whose worker died is not retried)")
    if device is not None:
        check_device(device, "--device")
    for d in devices or []:
        check_device(d, "--devices")


def check_executor(
    executor: str, slurm: dict[str, Any] | None = None, artifacts: Any = None, *, submit: bool = True
) -> str:
    """What the executor needs on this machine, checked in seconds before anything is written (one line each):
    Ray importable for "ray"; for "slurm" submitit, `sbatch`/`srun` and a job script sbatch accepts
    (`SlurmExecutor.check`), or with `submit=False` (a dry run, on a machine without SLURM) submitit and a job
    script it can write. Returns the SLURM job script ("" otherwise and for cluster = "local")."""
    if executor == "ray":
        try:
            import ray  # noqa: F401  (only whether it imports)
        except ImportError:
            raise RttuiError(
                "--executor ray needs Ray, which is not installed; pip install 'rttui[ray]' (or use --executor local)"
            ) from None
    if executor == "slurm":
        from rttui.runner.slurm_executor import SlurmExecutor

        runner = SlurmExecutor(slurm or {}, artifacts)
        if submit or runner.options["cluster"] == "local":
            return runner.check()
        return runner.script()
    return ""


DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(name: str, flag: str = "--device") -> None:
    """A device torch can parse, of a kind rttui trains on, that this machine has (imports torch)."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise RttuiError(f"{flag} {name!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    if dev.type not in DEVICE_TYPES:
        raise RttuiError(f"{flag} {name!r}: rttui runs on {', '.join(DEVICE_TYPES)}; use one of them")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise RttuiError(f"{flag} {name!r}: no CUDA device is visible on this machine; use cpu")
        if dev.index is not None and dev.index >= count:
            raise RttuiError(f"{flag} {name!r}: this machine has {count} CUDA device(s); use cuda:0..cuda:{count - 1}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RttuiError(f"{flag} {name!r}: MPS is not available on this machine; use cpu")


def make_executor(
    executor: str = "local",
    *,
    workers: int | None = None,
    devices: list[str] | None = None,
    device: str | None = None,
    address: str | None = None,
    slurm: dict[str, Any] | None = None,
    artifacts: Any = None,
) -> Any:
    """The executor for these options (see the module doc); sets torch's thread count when in-process.
    A SLURM executor checks first that `artifacts` is shared with the nodes (`preflight`, one line if not)."""
    if executor == "slurm":
        from rttui.runner.slurm_executor import SlurmExecutor

        runner = SlurmExecutor(slurm or {}, artifacts)
        runner.preflight()
        return runner
    if executor == "ray":
        from rttui.runner.ray_executor import RayExecutor

        return RayExecutor(address, num_cpus=workers)
    from rttui.runner.local import InProcess

    pool_devices = pool_devices_for(workers, devices, device)
    if pool_devices is None:
        _set_threads()
        return InProcess((devices or [None])[0] if devices else device)
    from rttui.runner.pool import Pool

    return Pool(pool_devices)


def pool_devices_for(workers: int | None, devices: list[str] | None, device: str | None) -> list[str] | None:
    """The pool's worker devices, or None when the study runs in this process (one worker, one device)."""
    if workers is None and not devices:
        if device is not None:
            return None
        import torch

        if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
            return None  # one GPU or CPU: in-process is fastest
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]  # one worker per GPU
    if (workers or 1) == 1 and len(devices or []) <= 1:
        return None
    from rttui.runner.pool import plan_workers

    return plan_workers(workers, devices or ([device] if device else None))


def _set_threads() -> None:
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
