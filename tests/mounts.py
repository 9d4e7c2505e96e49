"""Real file-system faults for tests: a small tmpfs that fills up, a read-only view of a folder.

Both need mount(8) and the right to mount (root in a container that allows it). Where that is refused, the
test using them is skipped with the reason mount gave; the injected-error variants of the same tests still run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    if shutil.which("mount") is None:
        pytest.skip("mount(8) is not installed here; the injected-error variant of this test covers the code path")
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount here ({r.stderr.strip() or r.returncode}); the injected-error variant covers it")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextlib.contextmanager
def small_disk(where: Path, size_kib: int) -> Iterator[Path]:
    """A fresh tmpfs of `size_kib` KiB mounted at `where`."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where))
    try:
        yield where
    finally:
        _umount(where)


@contextlib.contextmanager
def read_only_view(src: Path, where: Path) -> Iterator[Path]:
    """`src` seen read-only at `where` (a read-only bind mount: even root cannot write there)."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(src), str(where))
    try:
        r = subprocess.run(["mount", "-o", "remount,bind,ro", str(where)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot remount read-only here ({r.stderr.strip()})")
        yield where
    finally:
        _umount(where)


def fill(folder: Path, leave_bytes: int = 0) -> Path:
    """Fill the file system holding `folder` until at most `leave_bytes` are free; returns the filler file."""
    filler = folder / "filler.bin"
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    chunk = b"\0" * (1 << 16)
    with open(filler, "ab", buffering=0) as f:
        todo = max(0, free - leave_bytes)
        with contextlib.suppress(OSError):  # ENOSPC: full, which is the point
            while todo > 0:
                todo -= f.write(chunk[: min(len(chunk), todo)]) or todo
    return filler
