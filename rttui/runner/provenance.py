"""How a number was made: the software, hardware and numeric settings of this process, as one plain dict.

`collect()` is computed once per process and cached (`refresh=True` recomputes, e.g. after the runner changed
torch's thread count or determinism flags). Everything is JSON-able; absent things are None, never an error:
a package that is not installed, git missing or slow, rttui not installed from a git checkout, no CUDA.

`env_id` is a short hash of the fields that can change a number (see `NUMERIC_FIELDS`): code and package
versions, rttui's commit and dirty flag, the devices and CUDA/cuDNN builds, thread counts and the determinism,
TF32 and autocast settings. It leaves out the host name, the OS string and the collection time, so two
identical machines (or two runs on one machine) share an env_id and a table can say "one environment".

Must never: import a heavy package just for its version (versions come from importlib.metadata), fail because
git is missing, or write anything anywhere.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import platform
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# Distributions whose versions are recorded (None when not installed).
PACKAGES = ("torch", "torchvision", "timm", "peft", "numpy", "pyautoattack", "torchattacks", "foolbox")
# The fields env_id hashes: everything that can change a number. Not host, os, collected_at.
NUMERIC_FIELDS = (
    "rttui",
    "rttui_commit",
    "rttui_dirty",
    "python",
    "packages",
    "cuda",
    "cudnn",
    "devices",
    "torch_threads",
    "torch_interop_threads",
    "deterministic",
    "deterministic_warn_only",
    "cudnn_deterministic",
    "cudnn_benchmark",
    "tf32_matmul",
    "tf32_cudnn",
    "float32_matmul_precision",
    "autocast",
)
GIT_TIMEOUT_S = 5.0

_cache: dict[str, Any] | None = None


def package_version(name: str) -> str | None:
    """The installed distribution's version, or None; never imports the package."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):  # git missing, not executable, or too slow
        return None


def git_state(package_dir: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout `package_dir` is tracked in, or (None, None).

    Only a checkout that tracks the package's own `__init__.py` counts, so a pip install into a virtualenv that
    happens to sit inside some other repository does not report that repository's commit. `dirty` means files of
    the package differ from the commit (modified, staged, or untracked and not ignored); edits elsewhere in the
    repository (README, tests) do not change rttui's numbers and do not count.
    """
    tracked = _git(package_dir, "ls-files", "--error-unmatch", "--", "__init__.py")
    if tracked is None or tracked.returncode != 0:
        return None, None
    head = _git(package_dir, "rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return None, None
    status = _git(package_dir, "status", "--porcelain", "--", ".")
    dirty = None if status is None or status.returncode != 0 else bool(status.stdout.strip())
    return head.stdout.strip(), dirty


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch_fields() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    devices = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [f"cpu: {cpu_name()}"]
    )
    cudnn = torch.backends.cudnn
    return {
        "cuda": torch.version.cuda,  # the CUDA torch was built with (None on CPU-only builds)
        "cudnn": cudnn.version() if cudnn.is_available() else None,
        "cuda_available": cuda,
        "devices": devices,
        "device": devices[0],
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": bool(cudnn.deterministic),
        "cudnn_benchmark": bool(cudnn.benchmark),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        # Process-wide autocast state at collection time; each evaluation's own precision is in its rows.
        "autocast": {
            dev: {"enabled": torch.is_autocast_enabled(dev), "dtype": str(torch.get_autocast_dtype(dev))}
            for dev in ("cpu", "cuda")
        },
    }


def env_id(env: dict[str, Any]) -> str:
    """A short, stable hash of the number-changing fields of `env` (12 hex digits of SHA-256)."""
    numeric = {k: env.get(k) for k in NUMERIC_FIELDS}
    return hashlib.sha256(json.dumps(numeric, sort_keys=True).encode()).hexdigest()[:12]


def _collect() -> dict[str, Any]:
    import rttui

    commit, dirty = git_state(Path(rttui.__file__).resolve().parent)
    env: dict[str, Any] = {
        "rttui": rttui.__version__,
        "rttui_commit": commit,
        "rttui_dirty": dirty,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": {p: package_version(p) for p in PACKAGES},
        **_torch_fields(),
        "host": socket.gethostname(),
        "os": platform.platform(),
        "collected_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    env["torch"] = env["packages"]["torch"]  # the headline versions, flat, for tables and exports
    env["timm"] = env["packages"]["timm"]
    env["env_id"] = env_id(env)
    return env


def collect(refresh: bool = False) -> dict[str, Any]:
    """This process's environment (see module doc), computed on the first call and cached; a fresh copy each
    time so a caller's edits never reach the cache."""
    global _cache
    if _cache is None or refresh:
        _cache = _collect()
    return copy.deepcopy(_cache)
