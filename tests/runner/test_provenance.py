"""Provenance: the recorded environment is the running one, JSON-able, cached, and honest about git."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import rttui
from rttui.runner import provenance


def test_provenance_fields_match_the_running_interpreter() -> None:
    env = provenance.collect(refresh=True)
    json.dumps(env)  # plain and JSON-able
    assert env["rttui"] == rttui.__version__
    assert env["python"] == platform.python_version()
    assert env["torch"] == env["packages"]["torch"]
    assert env["torch"].split("+")[0] == torch.__version__.split("+")[0]
    import timm

    assert env["timm"] == timm.__version__
    assert env["cuda"] == torch.version.cuda
    assert env["torch_threads"] == torch.get_num_threads()
    assert env["deterministic"] == torch.are_deterministic_algorithms_enabled()
    assert env["tf32_matmul"] == torch.backends.cuda.matmul.allow_tf32
    assert env["cudnn_benchmark"] == torch.backends.cudnn.benchmark
    assert env["cuda_available"] == torch.cuda.is_available()
    assert env["device"] == env["devices"][0]
    for key in ("host", "collected_at", "env_id", "rttui_commit", "rttui_dirty"):
        assert key in env


def test_provenance_missing_package_is_none() -> None:
    assert provenance.package_version("surely-not-an-installed-distribution-xyz") is None


def test_provenance_is_cached_per_process_and_copies_out(monkeypatch: pytest.MonkeyPatch) -> None:
    first = provenance.collect(refresh=True)
    calls = []
    monkeypatch.setattr(provenance, "_collect", lambda: calls.append(1) or {})
    again = provenance.collect()
    assert again == first and not calls  # cached: not recomputed
    again["rttui"] = "tampered"
    assert provenance.collect()["rttui"] == first["rttui"]  # a caller's edit never reaches the cache


def test_provenance_env_id_hashes_numeric_fields_only() -> None:
    env = provenance.collect(refresh=True)
    assert env["env_id"] == provenance.env_id(env)
    other_host = {**env, "host": "elsewhere", "collected_at": "2000-01-01T00:00:00+00:00", "os": "other"}
    assert provenance.env_id(other_host) == env["env_id"]
    assert provenance.env_id({**env, "torch_threads": env["torch_threads"] + 1}) != env["env_id"]
    assert provenance.env_id({**env, "packages": {**env["packages"], "timm": "0.0.1"}}) != env["env_id"]


def test_provenance_non_git_install_has_no_commit(tmp_path: Path) -> None:
    pkg = tmp_path / "site-packages" / "rttui"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    assert provenance.git_state(pkg) == (None, None)


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout.strip()


@needs_git
def test_provenance_git_checkout_gives_commit_and_dirty_flag(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    pkg = repo / "rttui"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '0'\n")
    (repo / "README.md").write_text("x\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    head = _git(repo, "rev-parse", "HEAD")
    assert provenance.git_state(pkg) == (head, False)
    (repo / "README.md").write_text("edited\n")  # outside the package: numbers cannot change
    assert provenance.git_state(pkg) == (head, False)
    (pkg / "new_attack.py").write_text("")  # untracked code inside the package does
    assert provenance.git_state(pkg) == (head, True)


@needs_git
def test_provenance_package_untracked_in_an_unrelated_repo_has_no_commit(tmp_path: Path) -> None:
    """A virtualenv inside some other project's checkout must not report that project's commit."""
    _git(tmp_path, "init", "-q")
    pkg = tmp_path / ".venv" / "site-packages" / "rttui"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    assert provenance.git_state(pkg) == (None, None)


def test_provenance_without_git_on_path_is_none(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", str(tmp_path))  # no git executable anywhere
        assert provenance.git_state(Path(rttui.__file__).parent) == (None, None)
        assert provenance.collect(refresh=True)["rttui_commit"] is None
    provenance.collect(refresh=True)  # leave the cache as the real environment for later tests
